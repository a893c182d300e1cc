"""Bad input to every public function and class of ``attnkit.datasets``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each callable with small valid inputs. Most of these are generators: their sizes are what
the reader asks for, so a huge ``n`` is not broken here (it is a request, not an input to dwarf).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from robustness_kit import (
    C,
    Fraction,
    Int,
    Keep,
    P,
    Spec,
    T,
    Text,
    heavy,
    public_callables,
    table_tests,
)

nli, patterns, sequences, shapes, translation = (
    importlib.import_module(f"attnkit.datasets.{m}") for m in ("nli", "patterns", "sequences", "shapes", "translation"))

NOT_TABLED = {
    "nli.NLIData": "a container (dataclass) built by make_nli",
    "shapes.Vocab": "a container (dataclass) of words; its encode/decode are tested in test_shapes.py",
    "shapes.ShapesCaptions": "a container (dataclass) built by make_shapes",
    "translation.Batch": "a container (dataclass) built by make_batch",
}

PAIRS = [("i love you", "je t' aime"), ("look it up", "cherchez -le")]


def _tmp_tsv(tmp_path_factory=None) -> str:
    import tempfile

    return str(tempfile.mkdtemp(prefix="attnkit-robust-")) + "/corpus.tsv"


SPECS = [
    Spec("nli.nli_label", nli.nli_label,
         {"premise": Text("a red dog and a blue car"), "hypothesis": Text("a red animal")}),
    Spec("nli.make_nli", nli.make_nli, {"n": Int(6), "min_items": Int(2), "max_items": Int(3),
                                        "hard_negatives": Fraction(0.5, closed=True)}),
    Spec("patterns.tiled_textures", patterns.tiled_textures,
         {"n": Int(3), "size": Int(8), "noise": P(0.1, allow_zero=True)}),
    Spec("patterns.shapes_dataset", patterns.shapes_dataset, {"n": Int(3), "size": Int(16), "stamp": Int(4),
                                                              "noise": P(0.1, allow_zero=True)}),
    Spec("patterns.digit_glyphs", patterns.digit_glyphs, {"scale": Int(1)}),
    Spec("patterns.corrupt", patterns.corrupt,
         {"patterns": T(3, 8, rank=(1, None)), "fraction": Fraction(0.3, closed=True),
          "mode": C("flip", ("flip", "mask"))}),
    Spec("patterns.repeated_patches", patterns.repeated_patches,
         {"n": Int(2), "grid": Int(4), "patch": Int(2), "motifs": Int(4), "noise": P(0.2, allow_zero=True)}),
    Spec("patterns.cells", patterns.cells, {"images": T(2, 1, 8, 8), "patch": Int(4, huge=True)},
         skip={"images:dtype": "a reshape: any dtype"}),
    Spec("patterns.uncells", patterns.uncells, {"x": T(2, 4, 16), "patch": Int(4, huge=True)},
         skip={"x:dtype": "a reshape: any dtype"}),
    Spec("sequences.relational_task", sequences.relational_task, {"n": Int(4)}),
    Spec("sequences.reversal_task", sequences.reversal_task, {"n": Int(4), "length": Int(5), "vocab_size": Int(6, 2)}),
    Spec("sequences.set_max_task", sequences.set_max_task, {"n": Int(4), "min_size": Int(2), "max_size": Int(5)}),
    Spec("sequences.sorting_task", sequences.sorting_task, {"n": Int(4), "length": Int(5), "vocab_size": Int(6, 2)}),
    Spec("shapes.draw_shape", shapes.draw_shape,
         {"canvas": Keep(lambda: np.zeros((3, 16, 16))), "shape": C("circle", tuple(shapes.SHAPES)),
          "color": C("red", tuple(shapes.COLORS)), "cx": Keep(8.0), "cy": Keep(7.0), "r": P(3.0)}),
    Spec("shapes.make_shapes", shapes.make_shapes, {"n": Int(3), "size": Int(32), "noise": P(0.05, allow_zero=True)}),
    Spec("translation.generate_corpus", translation.generate_corpus, {"n": Int(5, 2)}),
    Spec("translation.format_corpus", translation.format_corpus, {"pairs": Keep(PAIRS)}),
    Spec("translation.corpus_path", translation.corpus_path, {}),
    Spec("translation.write_corpus", translation.write_corpus, {"path": Keep(_tmp_tsv), "n": Int(4, 2)}),
    Spec("translation.load_corpus", translation.load_corpus,
         {"path": Text(str(translation.corpus_path()), optional=True)}),
    Spec("translation.split_corpus", translation.split_corpus, {"pairs": Keep(lambda: list(PAIRS) * 3),
                                                                "held_out": Fraction(0.3)}),
    Spec("translation.Vocab", lambda words: translation.Vocab(words).encode("a b"),
         {"words": Keep(lambda: ["<pad>", "<s>", "</s>", "a", "b"])}),
    Spec("translation.build_vocabs", translation.build_vocabs, {"pairs": Keep(PAIRS)}),
    Spec("translation.pad_batch", translation.pad_batch, {"seqs": Keep([[3, 4, 5], [6]]), "pad_id": Int(0, 0)}),
    Spec("translation.make_batch", lambda pairs: translation.make_batch(pairs, *translation.build_vocabs(PAIRS)),
         {"pairs": Keep(PAIRS)}),
]
# each call of these trains or runs a model: fewer examples
HEAVY_SPECS = (
    "nli.make_nli", "shapes.make_shapes", "translation.write_corpus",
)
for _spec in SPECS:
    if _spec.name in HEAVY_SPECS:
        heavy(_spec)


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.datasets"), NOT_TABLED, test_file="tests/datasets/test_datasets_robustness.py")


def test_pad_batch_and_split_refuse_nonsense() -> None:
    with pytest.raises(TypeError, match="seqs"):
        translation.pad_batch([[1, 2], "ab"])
    with pytest.raises(ValueError, match="pairs"):
        translation.split_corpus([], 0.2)
    assert torch.equal(translation.pad_batch([[1, 2], [3]])[1], torch.tensor([2, 1]))
