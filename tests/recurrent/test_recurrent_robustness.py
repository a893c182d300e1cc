"""Bad input to every public function and class of ``attnkit.recurrent``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each callable with small valid inputs (float32 for modules, whose weights are float32).
"""

from __future__ import annotations

import importlib

import torch
from robustness_kit import (
    B,
    C,
    Idx,
    Int,
    Keep,
    P,
    Spec,
    T,
    Text,
    U,
    fresh,
    heavy,
    module,
    public_callables,
    table_tests,
)

from attnkit.datasets.nli import make_nli
from attnkit.datasets.shapes import make_shapes
from attnkit.datasets.translation import build_vocabs

self_attention, seq2seq, sat, feedback = (importlib.import_module(f"attnkit.recurrent.{m}")
                                          for m in ("self_attention", "seq2seq", "show_attend_tell", "feedback"))

F32 = torch.float32
V = 26  # the NLI vocabulary
NOT_TABLED = {
    "seq2seq.Encoded": "a container (dataclass) built by Encoder",
    "show_attend_tell.DecodeOutput": "a container (dataclass) built by ShowAttendTell",
    "show_attend_tell.TrainLog": "a container (dataclass) built by train_captioner",
    "feedback.FeedbackData": "a container (dataclass) built by feedback_task",
    "feedback.feedback_run": "an experiment driver: trains two models (seconds); tested in test_feedback.py",
    "records.load_record": "reads a recorded file (tests/recurrent/test_records.py)",
    "records.main": "the command line of the multi-seed records (python -m attnkit.recurrent.records)",
}
PAIRS = [("i love you", "je t' aime"), ("look it up", "cherchez -le"), ("i love it", "je l' aime")]


def _lengths(values: tuple[int, ...]):
    from robustness_kit import Arg

    return Arg(lambda: torch.tensor(values), "index", rank=(1, 1), low=1, high=max(values) + 1, nan="any")


def nli_inputs(b: int = 2, lp: int = 5, lh: int = 3) -> dict:
    return {"premise": Idx(b, lp, high=V, seed=1), "premise_lengths": _lengths((lp, lp - 2)),
            "hypothesis": Idx(b, lh, high=V, seed=2), "hypothesis_lengths": _lengths((lh, lh - 1))}


def data() -> object:
    return make_nli(6, seed=0)


def tiny_nli() -> object:
    torch.manual_seed(0)
    return self_attention.BagOfWords(V, embed=4, hidden=4)


def vocabs() -> tuple:
    return build_vocabs(PAIRS)


def tiny_seq2seq() -> object:
    torch.manual_seed(0)
    src, tgt = vocabs()
    return seq2seq.Seq2Seq(len(src), len(tgt), E=4, H=4, A=4)


def encoded() -> object:
    torch.manual_seed(0)
    enc = seq2seq.Encoder(9, 4, 4)
    return enc(torch.randint(1, 9, (2, 5)), torch.tensor([5, 3]))


def shapes_data():
    return make_shapes(2, size=24, seed=0)


def tiny_captioner() -> object:
    torch.manual_seed(0)
    return sat.ShowAttendTell(13, embed=4, hidden=8, att=4, channels=4)


SPECS = [
    # self-attention arrives
    Spec("self_attention.perturb_weights", self_attention.perturb_weights,
         {"w": U(2, 3, 5), "pad": B(lambda: torch.tensor([[True] * 5, [True] * 3 + [False] * 2]), rank=(2, 2)),
          "how": C("permute", ("permute", "uniform"))}),
    Spec("self_attention.pair_features", self_attention.pair_features, {"u": T(2, 4), "v": T(2, 4, seed=1)}),
    module(self_attention.BagOfWords, {"vocab_size": Int(V), "embed": Int(4), "hidden": Int(4), "classes": Int(3)},
           nli_inputs(), name="self_attention.BagOfWords"),
    Spec("self_attention.distance_bias_mask", self_attention.distance_bias_mask,
         {"bias": T(5, dtype=F32), "lengths": _lengths((4, 2)), "L": Int(4)}),
    module(self_attention.DecomposableAttention, {"vocab_size": Int(V), "embed": Int(4), "hidden": Int(4),
                                                  "max_distance": Int(2, 0), "intra": Keep(True)},
           nli_inputs(), name="self_attention.DecomposableAttention"),
    module(self_attention.LSTMN, {"input_size": Int(3), "hidden": Int(4), "att": Int(4)},
           {"x": T(2, 5, 3, dtype=F32), "lengths": _lengths((5, 3))}, name="self_attention.LSTMN"),
    module(self_attention.LSTMNClassifier, {"vocab_size": Int(V), "embed": Int(4), "hidden": Int(4)},
           nli_inputs(), name="self_attention.LSTMNClassifier"),
    Spec("self_attention.attention_penalty", self_attention.attention_penalty, {"A": U(2, 3, 5, rank=(2, None))}),
    module(self_attention.StructuredSelfAttention, {"vocab_size": Int(V), "embed": Int(4), "hidden": Int(4),
                                                    "att": Int(4), "heads": Int(2)},
           nli_inputs(), name="self_attention.StructuredSelfAttention"),
    Spec("self_attention.train_nli", self_attention.train_nli,
         {"model": fresh(tiny_nli), "data": Keep(data), "epochs": Int(1), "batch_size": Int(3, huge=True),
          "lr": P(0.01), "penalty": P(0.0, allow_zero=True), "progress": Keep(False)}),
    Spec("self_attention.nli_accuracy", self_attention.nli_accuracy, {"model": fresh(tiny_nli), "data": Keep(data)}),
    Spec("self_attention.perturbation_effect", self_attention.perturbation_effect,
         {"model": fresh(lambda: self_attention.DecomposableAttention(V, embed=4, hidden=4)), "data": Keep(data),
          "how": C("permute", ("permute", "uniform"))}),
    # feedback (Wang et al. 2014)
    Spec("feedback.feedback_task", feedback.feedback_task, {"n": Int(4), "features": Int(8), "classes": Int(3),
                                                            "active": Int(2), "contrast": P(0.5, allow_zero=True)}),
    module(feedback.FeedbackClassifier, {"features": Int(8), "classes": Int(3), "hidden": Int(4), "embed": Int(2),
                                         "classifier_hidden": Int(4)},
           {"x": T(2, 8, dtype=F32)}, name="feedback.FeedbackClassifier"),
    Spec("feedback.mlp_baseline", feedback.mlp_baseline, {"features": Int(8), "classes": Int(3), "hidden": Int(4)}),
    Spec("feedback.train_feedback", feedback.train_feedback,
         {"model": fresh(lambda: feedback.FeedbackClassifier(features=64, hidden=4, embed=2, classifier_hidden=4)),
          "data": Keep(lambda: feedback.feedback_task(6)), "epochs": Int(1), "batch_size": Int(3, huge=True),
          "lr": P(0.01)}),
    Spec("feedback.feedback_accuracy", feedback.feedback_accuracy,
         {"model": fresh(lambda: feedback.FeedbackClassifier(features=64, hidden=4, embed=2, classifier_hidden=4)),
          "data": Keep(lambda: feedback.feedback_task(6))}),
    # seq2seq
    module(seq2seq.BahdanauDecoder, {"V": Int(9), "E": Int(4), "H": Int(4), "A": Int(4),
                                     "dropout": P(0.0, allow_zero=True)},
           {"tgt_in": Idx(2, 4, high=9), "enc": Keep(encoded)}, name="seq2seq.BahdanauDecoder"),
    module(seq2seq.Encoder, {"V": Int(9), "E": Int(4), "H": Int(4), "dropout": P(0.0, allow_zero=True)},
           {"src": Idx(2, 5, high=9), "src_len": _lengths((5, 3))}, name="seq2seq.Encoder"),
    module(seq2seq.LuongDecoder, {"V": Int(9), "E": Int(4), "H": Int(4), "A": Int(4), "window": Int(2)},
           {"tgt_in": Idx(2, 4, high=9), "enc": Keep(encoded)}, name="seq2seq.LuongDecoder"),
    Spec("seq2seq.Score", lambda kind, H, A, q: seq2seq.Score(kind, H, A).attend(q, q, None),
         {"kind": C("general", ("dot", "general", "additive", "concat")), "H": Int(4), "A": Int(3),
          "q": T(2, 3, 4, dtype=F32, nan="any", rank=(2, None))}),
    module(seq2seq.Seq2Seq, {"src_vocab": Int(9), "tgt_vocab": Int(8), "E": Int(4), "H": Int(4), "A": Int(4)},
           {"src": Idx(2, 5, high=9), "src_len": _lengths((5, 3)), "tgt_in": Idx(2, 4, high=8)},
           name="seq2seq.Seq2Seq"),
    Spec("seq2seq.evaluate", seq2seq.evaluate,
         {"model": fresh(tiny_seq2seq), "pairs": Keep(PAIRS), "src_vocab": Keep(lambda: vocabs()[0]),
          "tgt_vocab": Keep(lambda: vocabs()[1]), "batch_size": Int(2, huge=True), "max_len": Int(5)}),
    Spec("seq2seq.local_mask", seq2seq.local_mask,
         {"p": U(2, 3, high=5.0), "src_len": _lengths((5, 3)), "S": Int(5), "D": Int(2)}),
    Spec("seq2seq.token_accuracy", seq2seq.token_accuracy, {"hyp": Keep(["a", "b"]), "ref": Keep(["a", "c"])}),
    Spec("seq2seq.edit_accuracy", seq2seq.edit_accuracy, {"hyp": Keep(["a", "b"]), "ref": Keep(["a", "c"])}),
    Spec("seq2seq.train_seq2seq", seq2seq.train_seq2seq,
         {"model": fresh(tiny_seq2seq), "pairs": Keep(PAIRS), "src_vocab": Keep(lambda: vocabs()[0]),
          "tgt_vocab": Keep(lambda: vocabs()[1]), "epochs": Int(1), "batch_size": Int(2, huge=True), "lr": P(0.01),
          "clip": P(1.0), "progress": Keep(False)}),
    Spec("seq2seq.translate", seq2seq.translate,
         {"model": fresh(tiny_seq2seq), "sentence": Text("i love you"), "src_vocab": Keep(lambda: vocabs()[0]),
          "tgt_vocab": Keep(lambda: vocabs()[1]), "max_len": Int(5)}),
    # show, attend and tell
    Spec("show_attend_tell.coordinate_channels", sat.coordinate_channels, {"B": Int(2), "H": Int(3), "W": Int(4)}),
    module(sat.GridEncoder, {"channels": Int(4)}, {"images": U(2, 3, 8, 8, dtype=F32)},
           name="show_attend_tell.GridEncoder", positional=("images",)),
    module(sat.ShowAttendTell, {"vocab_size": Int(13), "embed": Int(4), "hidden": Int(8), "att": Int(4),
                                "channels": Int(4)},
           {"images": U(2, 3, 8, 8, dtype=F32), "tokens": Idx(2, 4, high=13),
            "attention": C("soft", ("soft", "hard"))}, name="show_attend_tell.ShowAttendTell"),
    Spec("show_attend_tell.caption_loss", sat.caption_loss,
         {"logits": T(2, 4, 6), "targets": Idx(2, 4, high=6), "pad_id": Int(0, 0),
          "reduction": C("mean", ("mean", "sum_per_caption"))}),
    Spec("show_attend_tell.train_captioner", sat.train_captioner,
         {"model": fresh(tiny_captioner), "images": Keep(lambda: shapes_data().images),
          "tokens": Keep(lambda: shapes_data().tokens), "epochs": Int(1), "batch_size": Int(2, huge=True),
          "lr": P(0.01), "attention": C("soft", ("soft", "hard")), "doubly_stochastic": P(0.0, allow_zero=True),
          "progress": Keep(False)}),
    Spec("show_attend_tell.caption_accuracy", sat.caption_accuracy,
         {"model": fresh(tiny_captioner), "images": U(2, 3, 24, 24, dtype=F32, nan="any"),
          "tokens": Idx(2, 5, high=13), "attention": C("soft", ("soft", "hard")), "batch_size": Int(1, huge=True)}),
    Spec("show_attend_tell.attention_on_object", sat.attention_on_object,
         {"weights": U(2, 3, 16), "centers": U(2, 2, 2, high=24.0, seed=1, nan="any"), "image_size": Int(24),
          "radius": P(6.0)}),
    Spec("show_attend_tell.upsample_weights", sat.upsample_weights,
         {"weights": U(2, 3, 16, rank=(1, None)), "image_size": Int(8)}),
]
# each call of these trains or runs a model: fewer examples
HEAVY_SPECS = (
    "self_attention.BagOfWords", "self_attention.DecomposableAttention", "self_attention.LSTMN",
    "self_attention.LSTMNClassifier", "self_attention.StructuredSelfAttention", "self_attention.train_nli",
    "self_attention.nli_accuracy", "self_attention.perturbation_effect", "seq2seq.BahdanauDecoder",
    "seq2seq.Encoder", "seq2seq.LuongDecoder", "seq2seq.Seq2Seq", "seq2seq.evaluate", "seq2seq.train_seq2seq",
    "seq2seq.translate", "show_attend_tell.GridEncoder", "show_attend_tell.ShowAttendTell",
    "show_attend_tell.train_captioner", "show_attend_tell.caption_accuracy", "feedback.train_feedback",
)
for _spec in SPECS:
    if _spec.name in HEAVY_SPECS:
        heavy(_spec)


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.recurrent"), NOT_TABLED, test_file="tests/recurrent/test_recurrent_robustness.py")
