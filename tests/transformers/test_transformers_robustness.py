"""Bad input to every public function and class of ``attnkit.transformers``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each callable with small valid inputs (float32 for modules, whose weights are float32).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from robustness_kit import (
    B,
    C,
    Idx,
    Int,
    Keep,
    P,
    Real,
    Spec,
    T,
    U,
    fresh,
    heavy,
    module,
    public_callables,
    table_tests,
)

blocks, clip, dense, gat, hopfield, nonlocal_block, positions, relational, sets, vit, warmup = (
    importlib.import_module(f"attnkit.transformers.{m}")
    for m in ("blocks", "clip", "dense_attention", "gat", "hopfield", "nonlocal_block", "positions", "relational",
              "sets", "vit", "warmup"))

F32 = torch.float32
NOT_TABLED = {
    "blocks.count_parameters": "takes any nn.Module: nothing to break but the module (see test_blocks.py)",
    "warmup.ffn_gradient_norms": "takes trained blocks: nothing to break but the modules (see test_warmup)",
    # figures: their arguments are drawing options, tested by the chapter build
    "diagrams.block_diagram": "a figure (drawing options only)",
    "diagrams.multihead_diagram": "a figure (drawing options only)",
    "diagrams.vit_diagram": "a figure (drawing options only)",
    # experiment drivers and their records: each call trains a whole experiment (seconds to minutes); their
    # inputs are seeds and step counts handed to the functions tabled here
    "gat.karate_run": "an experiment driver (trains)", "relational.relational_run": "an experiment driver (trains)",
    "sets.set_max_run": "an experiment driver (trains)", "nonlocal_block.denoising_run": "an experiment driver",
    "warmup.warmup_run": "an experiment driver (trains)",
    "records.provenance": "records of multi-seed runs (a CLI: python -m attnkit.transformers.records)",
    "records.summary": "records of multi-seed runs", "records.record_warmup": "records of multi-seed runs",
    "records.record_relational": "records of multi-seed runs", "records.record_sets": "records of multi-seed runs",
    "records.record_nonlocal": "records of multi-seed runs", "records.record_gat": "records of multi-seed runs",
    "records.load_record": "reads a shipped record by name", "records.main": "the records' command line",
}


def f32(*shape: int, seed: int = 0, **kw):
    return T(*shape, dtype=F32, seed=seed, **kw)


def adj(n: int = 5) -> torch.Tensor:
    a = torch.rand(n, n, generator=torch.Generator().manual_seed(3)) > 0.5
    return a | a.T | torch.eye(n, dtype=torch.bool)


def pad(b: int = 2, n: int = 5) -> torch.Tensor:
    p = torch.ones(b, n, dtype=torch.bool)
    p[1, -2:] = False
    return p


def tiny_transformer() -> object:
    torch.manual_seed(0)
    return blocks.TinyTransformer(8, d_model=8, n_heads=2, d_ff=16, max_len=16)


def tiny_vit() -> object:
    torch.manual_seed(0)
    return vit.TinyViT(image_size=8, patch=4, channels=1, dim=8, depth=1, heads=2, classes=3)


def tiny_clip() -> object:
    torch.manual_seed(0)
    return clip.TinyCLIP(dim=8)


def scene(b: int = 4, n: int = 3) -> dict:
    from attnkit.datasets.sequences import relational_task

    return relational_task(b, seed=0) if n else {}


def reasoner() -> object:
    batch = scene()
    torch.manual_seed(0)
    return relational.RelationNetwork(batch["objects"].shape[-1], batch["questions"].shape[-1], 10, hidden=8)


SPECS = [
    # blocks
    module(blocks.EncoderBlock, {"d_model": Int(8), "n_heads": Int(2), "d_ff": Int(16),
                                 "norm": C("pre", ("pre", "post")), "dropout": P(0.0, allow_zero=True)},
           {"x": f32(2, 5, 8), "key_padding": B(pad, rank=(2, 2))}, name="blocks.EncoderBlock"),
    module(blocks.DecoderBlock, {"d_model": Int(8), "n_heads": Int(2), "d_ff": Int(16)},
           {"y": f32(2, 4, 8), "memory": f32(2, 5, 8, seed=1), "memory_padding": B(pad, rank=(2, 2))},
           name="blocks.DecoderBlock"),
    module(blocks.FeedForward, {"d_model": Int(8), "d_ff": Int(16), "dropout": P(0.0, allow_zero=True)},
           {"input": f32(2, 5, 8, rank=(1, None))}, name="blocks.FeedForward", positional=("input",)),
    module(blocks.TinyTransformer, {"vocab_size": Int(8), "d_model": Int(8), "n_heads": Int(2), "d_ff": Int(16),
                                    "max_len": Int(16), "positions": C("sinusoidal", ("sinusoidal", "learned",
                                                                                     "rotary", "none"))},
           {"src": Idx(2, 5, high=9), "tgt_in": Idx(2, 4, high=9, seed=1), "src_padding": B(pad, rank=(2, 2))},
           name="blocks.TinyTransformer"),
    module(blocks.TransformerEncoder, {"d_model": Int(8), "n_heads": Int(2), "d_ff": Int(16), "n_layers": Int(2)},
           {"x": f32(2, 5, 8), "key_padding": B(pad, rank=(2, 2))}, name="blocks.TransformerEncoder"),
    Spec("blocks.scaling_experiment", blocks.scaling_experiment,
         {"dims": Keep([4, 16]), "n_keys": Int(4), "n_samples": Int(8)}),
    Spec("blocks.self_attention", blocks.self_attention,
         {"x": T(2, 5, 4, rank=(2, None)), "mask": B(lambda: torch.ones(5, 5, dtype=torch.bool).tril(), rank=(0, 3))},
         skip={"mask:dtype": "a float mask is valid (added to the scores)"}),
    Spec("blocks.seq2seq_accuracy", blocks.seq2seq_accuracy,
         {"model": fresh(tiny_transformer), "src": Idx(2, 5, high=9), "tgt": Idx(2, 4, high=8, seed=1)}),
    Spec("blocks.seq2seq_loss", lambda model, src, tgt: blocks.seq2seq_loss(model, (src, tgt)),
         {"model": fresh(tiny_transformer), "src": Idx(2, 5, high=9, aliases=("batch",)),
          "tgt": Idx(2, 4, high=8, seed=1, aliases=("batch",))}),
    Spec("blocks.train_steps", blocks.train_steps,
         {"model": fresh(tiny_transformer),
          "make_batch": Keep(lambda: (lambda step: (torch.randint(8, (2, 5)), torch.randint(8, (2, 4))))),
          "loss_fn": Keep(lambda: blocks.seq2seq_loss), "steps": Int(1), "lr": P(0.01), "clip": P(1.0),
          "desc": Keep("")}),
    # CLIP
    Spec("clip.caption_tokens", clip.caption_tokens, {"shape": Idx(5, high=4, rank=(1, 1)),
                                                      "quadrant": Idx(5, high=4, seed=1, rank=(1, 1))}),
    Spec("clip.caption_text", clip.caption_text, {"tokens": Idx(3, 3, high=8)}),
    Spec("clip.all_captions", clip.all_captions, {}),
    module(clip.ImageEncoder, {"dim": Int(8), "image_size": Int(8), "width": Int(4)},
           {"images": U(2, 1, 8, 8, dtype=F32)}, name="clip.ImageEncoder", positional=("images",)),
    module(clip.TextEncoder, {"dim": Int(8), "vocab": Int(8), "length": Int(3)},
           {"tokens": Idx(2, 3, high=8)}, name="clip.TextEncoder", positional=("tokens",)),
    module(clip.TinyCLIP, {"dim": Int(8)}, {"images": U(2, 1, 16, 16, dtype=F32),
                                            "tokens": Idx(2, 3, high=8)}, name="clip.TinyCLIP",
           positional=("images", "tokens")),
    Spec("clip.similarity", clip.similarity, {"image_emb": T(3, 6), "text_emb": T(4, 6, seed=1),
                                              "temperature": P(0.5)}),
    Spec("clip.info_nce", clip.info_nce, {"image_emb": T(3, 6), "text_emb": T(3, 6, seed=1), "temperature": P(0.5)}),
    Spec("clip.zero_shot", clip.zero_shot, {"model": fresh(tiny_clip), "images": U(2, 1, 16, 16, dtype=F32),
                                            "class_tokens": Idx(4, 3, high=8)}),
    Spec("clip.train_clip", clip.train_clip,
         {"model": fresh(tiny_clip), "images": U(4, 1, 16, 16, dtype=F32), "tokens": Idx(4, 3, high=8),
          "epochs": Int(1), "batch_size": Int(2, huge=True), "lr": P(0.01), "progress": Keep(False)}),
    Spec("clip.info_nce_floor", clip.info_nce_floor, {"classes": Idx(6, high=3, rank=(1, 1))},
         skip={"classes:range": "any integer caption ids"}),
    Spec("clip.training_floors", clip.training_floors,
         {"classes": Idx(8, high=3, rank=(1, 1)), "epochs": Int(1), "batch_size": Int(4, huge=True), "seed": Keep(0)},
         skip={"classes:range": "any integer caption ids"}),
    Spec("clip.prompt_ensemble", clip.prompt_ensemble, {"model": fresh(tiny_clip), "prompts": Idx(4, 2, 3, high=8)}),
    # dense attention
    Spec("dense_attention.danet_code_channel_score", dense.danet_code_channel_score,
         {"q": T(2, 3, 20, rank=(2, None)), "k": T(2, 3, 20, seed=1, rank=(2, None))}),
    Spec("dense_attention.criss_cross_mask", dense.criss_cross_mask, {"H": Int(3), "W": Int(4)}),
    Spec("dense_attention.full_attention_2d", dense.full_attention_2d,
         {"q": T(2, 3, 4, 5), "k": T(2, 3, 4, 5, seed=1), "v": T(2, 2, 4, 5, seed=2),
          "mask": B(lambda: dense.criss_cross_mask(4, 5), rank=(0, 3))},
         skip={"mask:dtype": "a float mask is valid (added to the scores)"}),
    Spec("dense_attention.criss_cross_attention", dense.criss_cross_attention,
         {"q": T(2, 3, 4, 5), "k": T(2, 3, 4, 5, seed=1), "v": T(2, 2, 4, 5, seed=2)}),
    Spec("dense_attention.danet_channel_score", dense.danet_channel_score,
         {"q": T(2, 3, 20, rank=(2, None)), "k": T(2, 3, 20, seed=1, rank=(2, None))}),
    Spec("dense_attention.danet_channel_attention", dense.danet_channel_attention, {"x": T(2, 3, 4, 5)}),
    Spec("dense_attention.axial_attention", dense.axial_attention,
         {"q": T(2, 3, 4, 5), "k": T(2, 3, 4, 5, seed=1), "v": T(2, 2, 4, 5, seed=2)}),
    Spec("dense_attention.triangle_attention", dense.triangle_attention,
         {"z": T(4, 4, 3), "W_q": T(3, 2, seed=1), "W_k": T(3, 2, seed=2), "W_v": T(3, 2, seed=3),
          "w_b": T(3, seed=4)}),
    Spec("dense_attention.attention_cost", dense.attention_cost,
         {"kind": C("axial", ("nonlocal", "criss_cross", "danet", "axial")), "H": Int(4), "W": Int(5), "C": Int(16),
          "Ci": Int(2), "recurrence": Int(2)}),
    # GAT
    Spec("gat.check_adjacency", gat.check_adjacency, {"adj": B(adj, rank=(2, 2)), "n": Int(5)}),
    Spec("gat.gat_score", gat.gat_score,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)), "a_src": T(2, 3, seed=2),
          "a_dst": T(2, 3, seed=3), "negative_slope": P(0.2, allow_zero=True)}),
    Spec("gat.uniform_score", gat.uniform_score,  # reads the shapes only: a NaN does not reach the scores
         {"q": T(2, 5, 3, rank=(2, None), nan="any"), "k": T(2, 6, 3, seed=1, rank=(2, None), nan="any")}),
    Spec("gat.gat_attention", gat.gat_attention,
         {"h": T(5, 4), "adj": B(adj, rank=(2, 2)), "W": T(2, 4, 3, seed=1), "a_src": T(2, 3, seed=2),
          "a_dst": T(2, 3, seed=3), "negative_slope": P(0.2, allow_zero=True)}),
    module(gat.GATLayer, {"in_features": Int(4), "out_features": Int(3), "heads": Int(2),
                          "dropout": P(0.0, allow_zero=True)},
           {"h": f32(5, 4), "adj": B(adj, rank=(2, 2))}, name="gat.GATLayer"),
    module(gat.UniformGraphLayer, {"in_features": Int(4), "out_features": Int(3), "dropout": P(0.0, allow_zero=True)},
           {"h": f32(5, 4), "adj": B(adj, rank=(2, 2))}, name="gat.UniformGraphLayer"),
    module(gat.GraphNet, {"in_features": Int(4), "hidden": Int(3), "classes": Int(2), "heads": Int(2),
                          "kind": C("gat", ("gat", "uniform"))},
           {"h": f32(5, 4), "adj": B(adj, rank=(2, 2))}, name="gat.GraphNet"),
    Spec("gat.karate_club", gat.karate_club, {"n_labelled": Int(2)}),
    Spec("gat.train_node_classifier", gat.train_node_classifier,
         {"model": fresh(lambda: gat.GraphNet(34, 4, 2, heads=1)), "data": Keep(lambda: gat.karate_club()),
          "epochs": Int(1), "lr": P(0.01), "weight_decay": P(0.0, allow_zero=True), "progress": Keep(False)}),
    # Hopfield
    Spec("hopfield.hopfield_update", hopfield.hopfield_update,
         {"patterns": T(2, 6, 4, rank=(2, None)), "queries": T(2, 3, 4, seed=1, rank=(2, None)), "beta": P(2.0)}),
    Spec("hopfield.hopfield_retrieve", hopfield.hopfield_retrieve,
         {"patterns": T(2, 6, 4, rank=(2, None)), "queries": T(2, 3, 4, seed=1, rank=(2, None)), "beta": P(2.0),
          "steps": Int(2)}),
    Spec("hopfield.hopfield_energy", hopfield.hopfield_energy,
         {"patterns": T(2, 6, 4, rank=(2, None)), "queries": T(2, 3, 4, seed=1, rank=(2, None)), "beta": P(2.0)}),
    Spec("hopfield.classical_hopfield_update", hopfield.classical_hopfield_update,
         {"patterns": T(6, 4, rank=(2, None)), "queries": T(3, 4, seed=1, rank=(2, None), nan="any")}),
    Spec("hopfield.effective_patterns", hopfield.effective_patterns, {"weights": U(2, 3, 6, rank=(1, None))}),
    Spec("hopfield.retrieval_accuracy", hopfield.retrieval_accuracy,
         {"patterns": T(6, 4, nan="any"), "retrieved": T(3, 4, seed=1, nan="any"), "targets": Idx(3, high=6)}),
    # non-local block
    Spec("nonlocal_block.flatten_positions", nonlocal_block.flatten_positions, {"x": T(2, 3, 4, 5)},
         skip={"x:dtype": "a reshape: any dtype"}),
    Spec("nonlocal_block.nonlocal_attention", nonlocal_block.nonlocal_attention,
         {"theta": T(2, 3, 4, 5), "phi": T(2, 3, 4, 5, seed=1), "g": T(2, 2, 4, 5, seed=2),
          "mode": C("embedded_gaussian", tuple(nonlocal_block.MODES))}),
    module(nonlocal_block.NonLocalBlock, {"channels": Int(4), "inner": Int(2),
                                          "mode": C("embedded_gaussian", tuple(nonlocal_block.MODES))},
           {"x": f32(2, 4, 3, 5)}, name="nonlocal_block.NonLocalBlock", positional=("x",)),
    module(nonlocal_block.Denoiser, {"channels": Int(4), "inner": Int(2), "patch": Int(4)}, {"noisy": f32(2, 1, 8, 8)},
           name="nonlocal_block.Denoiser", positional=("noisy",)),
    Spec("nonlocal_block.train_denoiser", nonlocal_block.train_denoiser,
         {"model": fresh(lambda: nonlocal_block.Denoiser(4, inner=2)), "noisy": f32(4, 1, 8, 8, nan="any"),
          "clean": f32(4, 1, 8, 8, seed=1, nan="any"), "steps": Int(1), "batch_size": Int(2, huge=True), "lr": P(0.01),
          "progress": Keep(False)}),
    module(nonlocal_block.TokenNorm, {"channels": Int(4)}, {"x": f32(2, 4, 3, 5)}, name="nonlocal_block.TokenNorm",
           positional=("x",)),
    Spec("nonlocal_block.fit_shrinkage", nonlocal_block.fit_shrinkage,
         {"noisy": T(3, 1, 8, 8, nan="any"), "clean": T(3, 1, 8, 8, seed=1, nan="any")}),
    Spec("nonlocal_block.shrink", nonlocal_block.shrink, {"noisy": T(3, 1, 8, 8), "lam": Real(0.5)}),
    Spec("nonlocal_block.oracle_copy_average", nonlocal_block.oracle_copy_average,
         {"noisy": T(2, 1, 8, 8), "groups": Idx(2, 4, high=2), "patch": Int(4)},
         skip={"groups:range": "any integer group ids"}),
    Spec("nonlocal_block.cell_nonlocal_means", nonlocal_block.cell_nonlocal_means,
         {"noisy": T(2, 1, 8, 8), "patch": Int(4), "h2": P(0.5)}),
    Spec("nonlocal_block.weight_on_copies", nonlocal_block.weight_on_copies,
         {"weights": U(2, 4, 4, nan="any"), "groups": Idx(2, 4, high=2)},
         skip={"groups:range": "any integer group ids"}),
    # warm-up (the post-norm Transformer's learning-rate schedule)
    module(warmup.EncoderTagger, {"vocab_size": Int(10, 2), "d_model": Int(8), "n_heads": Int(2), "d_ff": Int(16),
                                  "n_layers": Int(2), "max_len": Int(16), "norm": C("post", ("post", "pre"))},
           {"tokens": Idx(2, 5, high=10)}, name="warmup.EncoderTagger", positional=("tokens",)),
    Spec("warmup.noam_lr", warmup.noam_lr, {"step": Int(10), "d_model": Int(8), "warmup": Int(5), "scale": P(1.0)}),
    Spec("warmup.schedule_factor", lambda kind, warmup_steps: warmup.schedule_factor(kind, warmup_steps)(3),
         {"kind": C("noam", tuple(warmup.SCHEDULES)), "warmup_steps": Int(5, aliases=("warmup",))}),
    Spec("warmup.tagging_loss", lambda model, src, tgt: warmup.tagging_loss(model, (src, tgt)),
         {"model": fresh(lambda: warmup.EncoderTagger(10, d_model=8, n_heads=2, d_ff=16, n_layers=1)),
          "src": Idx(2, 5, high=10, aliases=("batch", "tokens")),
          "tgt": Idx(2, 5, high=10, seed=1, aliases=("batch",))}),
    # positions
    module(positions.LearnedPositions, {"max_len": Int(8), "d_model": Int(4)}, {"length": Int(5, 0, huge=True)},
           name="positions.LearnedPositions", positional=("length",)),
    Spec("positions.apply_rotary", positions.apply_rotary,
         {"x": T(2, 5, 4, rank=(2, None)), "positions": Idx(5, high=100, rank=(1, 1)), "base": P(100.0)},
         skip={"positions:range": "any integer (or real) position is valid",
               "positions:dtype": "real positions are valid too"}),
    Spec("positions.rotary_score", positions.rotary_score,
         {"q": T(2, 5, 4, rank=(2, None)), "k": T(2, 6, 4, seed=1, rank=(2, None)), "base": P(100.0)}),
    Spec("positions.sinusoidal_positions", positions.sinusoidal_positions,
         {"length": Int(5, 0), "d_model": Int(6), "base": P(100.0)}),
    # relational
    module(relational.RelationNetwork, {"d_obj": Int(5), "d_question": Int(3), "n_answers": Int(4), "hidden": Int(8)},
           {"objects": f32(2, 4, 5), "questions": f32(2, 3, seed=1)}, name="relational.RelationNetwork"),
    module(relational.MLPReasoner, {"d_obj": Int(5), "d_question": Int(3), "n_answers": Int(4), "n_objects": Int(4),
                                    "hidden": Int(8)},
           {"objects": f32(2, 4, 5), "questions": f32(2, 3, seed=1)}, name="relational.MLPReasoner"),
    module(relational.AttentionReasoner, {"d_obj": Int(5), "d_question": Int(3), "n_answers": Int(4),
                                          "d_model": Int(8), "n_heads": Int(2), "n_layers": Int(1)},
           {"objects": f32(2, 4, 5), "questions": f32(2, 3, seed=1)}, name="relational.AttentionReasoner"),
    Spec("relational.accuracy_by_question", relational.accuracy_by_question,
         {"model": fresh(reasoner), "batch": Keep(scene), "n_types": Int(3)}),
    Spec("relational.object_pairs", relational.object_pairs, {"objects": T(2, 4, 5), "questions": T(2, 3, seed=1)}),
    Spec("relational.reasoning_loss", relational.reasoning_loss, {"model": fresh(reasoner), "batch": Keep(scene)}),
    # sets
    module(sets.MAB, {"d_model": Int(8), "n_heads": Int(2)},
           {"x": f32(2, 3, 8), "y": f32(2, 5, 8, seed=1), "key_padding": B(pad, rank=(2, 2))}, name="sets.MAB"),
    module(sets.SAB, {"d_model": Int(8), "n_heads": Int(2)}, {"x": f32(2, 5, 8), "key_padding": B(pad, rank=(2, 2))},
           name="sets.SAB"),
    module(sets.ISAB, {"d_model": Int(8), "n_heads": Int(2), "n_inducing": Int(3)},
           {"x": f32(2, 5, 8), "key_padding": B(pad, rank=(2, 2))}, name="sets.ISAB"),
    module(sets.PMA, {"d_model": Int(8), "n_heads": Int(2), "n_seeds": Int(2)},
           {"z": f32(2, 5, 8), "key_padding": B(pad, rank=(2, 2))}, name="sets.PMA"),
    module(sets.DeepSets, {"d_in": Int(3), "n_outputs": Int(2), "d_hidden": Int(8)},
           {"x": f32(2, 5, 3), "key_padding": B(pad, rank=(2, 2))}, name="sets.DeepSets"),
    Spec("sets.make_set_model", sets.make_set_model, {"name": C("Deep Sets, sum pooling", tuple(sets.SET_MODELS))}),
    module(sets.SetTransformer, {"d_in": Int(3), "n_outputs": Int(2), "d_model": Int(8), "n_heads": Int(2),
                                 "n_layers": Int(1), "n_inducing": Int(3), "encoder": C("isab", ("isab", "sab"))},
           {"x": f32(2, 5, 3), "key_padding": B(pad, rank=(2, 2))}, name="sets.SetTransformer"),
    # ViT
    Spec("vit.patchify", vit.patchify, {"images": T(2, 1, 8, 8), "patch": Int(4, huge=True)}),
    module(vit.PatchEmbedding, {"image_size": Int(8), "patch": Int(4), "channels": Int(1), "dim": Int(8)},
           {"images": f32(2, 1, 8, 8)}, name="vit.PatchEmbedding", positional=("images",)),
    module(vit.Block, {"dim": Int(8), "heads": Int(2), "mlp_ratio": Int(2)}, {"x": f32(2, 5, 8)}, name="vit.Block",
           positional=("x",)),
    module(vit.TinyViT, {"image_size": Int(8), "patch": Int(4), "channels": Int(1), "dim": Int(8), "depth": Int(1),
                         "heads": Int(2), "classes": Int(3)}, {"images": f32(2, 1, 8, 8)}, name="vit.TinyViT",
           positional=("images",)),
    Spec("vit.attention_rollout", lambda a0, a1: vit.attention_rollout([a0, a1]),
         {"a0": U(2, 2, 5, 5, aliases=("attentions",)), "a1": U(2, 2, 5, 5, seed=1, aliases=("attentions",))}),
    Spec("vit.cls_rollout_map", vit.cls_rollout_map, {"model": fresh(tiny_vit), "images": f32(2, 1, 8, 8)}),
    Spec("vit.train_classifier", vit.train_classifier,
         {"model": fresh(tiny_vit), "images": f32(4, 1, 8, 8), "labels": Idx(4, high=3), "epochs": Int(1),
          "batch_size": Int(2, huge=True), "lr": P(0.01), "progress": Keep(False)}),
    Spec("vit.accuracy", vit.accuracy, {"model": fresh(tiny_vit), "images": f32(4, 1, 8, 8, nan="any"),
                                        "labels": Idx(4, high=3)}),
]
# each call of these trains or runs a model: fewer examples
HEAVY_SPECS = (
    "blocks.TinyTransformer", "blocks.seq2seq_accuracy", "blocks.seq2seq_loss", "blocks.train_steps",
    "clip.TinyCLIP", "clip.zero_shot", "clip.train_clip", "gat.train_node_classifier",
    "nonlocal_block.train_denoiser", "nonlocal_block.Denoiser", "nonlocal_block.NonLocalBlock",
    "relational.AttentionReasoner", "sets.SetTransformer", "vit.TinyViT", "vit.cls_rollout_map",
    "vit.train_classifier", "vit.accuracy", "relational.accuracy_by_question", "blocks.DecoderBlock",
    "blocks.TransformerEncoder", "sets.ISAB",
)
for _spec in SPECS:
    if _spec.name in HEAVY_SPECS:
        heavy(_spec)


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.transformers"), NOT_TABLED,
    test_file="tests/transformers/test_transformers_robustness.py")


# ---- the cases of issue #17, one by one ------------------------------------------------------------

def test_learned_positions_refuse_a_negative_length() -> None:
    table = positions.LearnedPositions(4, 8)
    with pytest.raises(ValueError, match="length must be a non-negative int; got -1"):
        table(-1)  # once returned 3 rows
    assert table(0).shape == (0, 8)


def test_rotary_base_must_be_positive() -> None:
    with pytest.raises(ValueError, match="base must be a finite positive number; got 0"):
        positions.apply_rotary(torch.randn(3, 4), base=0)  # once NaN


def test_sinusoidal_table_must_be_floating_point() -> None:
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        positions.sinusoidal_positions(4, 8, dtype=torch.long)  # once an integer table


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), torch.tensor(0.0), torch.tensor([0.5, 0.5])])
def test_info_nce_refuses_bad_temperatures(bad) -> None:
    u, t = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="temperature"):
        clip.info_nce(u, t, bad)  # once NaN or an inverted softmax
    assert torch.isfinite(clip.info_nce(u, t, torch.tensor(0.07)))


def test_caption_tokens_refuse_a_quadrant_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"quadrant must hold integers in \[0, 4\)"):
        clip.caption_tokens(torch.tensor([0]), torch.tensor([7]))  # once a caption
    with pytest.raises(TypeError, match="shape must be an integer tensor"):
        clip.caption_tokens(torch.tensor([0.0]), torch.tensor([1]))


def test_wrappers_of_attend_name_their_own_arguments() -> None:
    with pytest.raises(ValueError, match="patterns"):
        hopfield.hopfield_update(torch.randn(5, 3), torch.randn(2, 4), 1.0)
    with pytest.raises(ValueError, match="beta"):
        hopfield.hopfield_update(torch.randn(5, 4), torch.randn(2, 4), 0.0)
    with pytest.raises(ValueError, match="theta"):
        nonlocal_block.nonlocal_attention(torch.randn(1, 2, 3, 3), torch.randn(1, 3, 3, 3), torch.randn(1, 2, 3, 3))
    with pytest.raises(TypeError, match="h"):
        gat.gat_attention(torch.ones(5, 4, dtype=torch.long), adj(), torch.randn(2, 4, 3), torch.randn(2, 3),
                          torch.randn(2, 3))
