"""Part III: the Transformer era (2017 onwards). Chapters: *Attention is all you need*,
*Attention everywhere*, *Memories and giant models*.

*Attention is all you need*

- :mod:`attnkit.transformers.positions`: ``sinusoidal_positions``, ``LearnedPositions``,
  ``apply_rotary``, ``rotary_score``, ``POSITIONS``.
- :mod:`attnkit.transformers.blocks`: ``scaling_experiment`` (why divide by sqrt(d)),
  ``FeedForward``, ``EncoderBlock``, ``DecoderBlock``, ``TransformerEncoder``, ``TinyTransformer``,
  ``train_steps``, ``seq2seq_loss``, ``seq2seq_accuracy``, ``self_attention``, ``count_parameters``.
- :mod:`attnkit.transformers.warmup`: ``noam_lr`` (Vaswani's schedule), ``schedule_factor``,
  ``EncoderTagger``, ``tagging_loss``, ``ffn_gradient_norms``, ``warmup_run``.
- :mod:`attnkit.transformers.sets`: the Set Transformer (``MAB``, ``SAB``, ``ISAB``, ``PMA``,
  ``SetTransformer``), ``DeepSets`` (sum, mean, max or attention pooling), ``set_max_run``.
- :mod:`attnkit.transformers.relational`: ``RelationNetwork``, ``MLPReasoner``,
  ``AttentionReasoner``, ``object_pairs``, ``reasoning_loss``, ``accuracy_by_question``,
  ``relational_run``.
- :mod:`attnkit.transformers.diagrams`: ``block_diagram``, ``multihead_diagram``, ``vit_diagram``.
- :mod:`attnkit.transformers.records`: recorded multi-seed runs (``python -m
  attnkit.transformers.records``), ``load_record``.

*Attention everywhere*

- :mod:`attnkit.transformers.nonlocal_block`: ``nonlocal_attention``, ``NonLocalBlock``,
  ``TokenNorm``, ``Denoiser``, ``train_denoiser``, ``denoising_run``, ``flatten_positions``,
  ``MODES``; baselines ``fit_shrinkage``, ``shrink``, ``oracle_copy_average``,
  ``cell_nonlocal_means``, ``weight_on_copies``.
- :mod:`attnkit.transformers.gat`: graph attention: ``gat_score``, ``gat_attention``, ``GATLayer``,
  ``uniform_score``, ``UniformGraphLayer``, ``GraphNet``, ``karate_club``,
  ``train_node_classifier``, ``check_adjacency``.

*Memories and giant models*

- :mod:`attnkit.transformers.hopfield`: ``hopfield_update``, ``hopfield_retrieve``,
  ``hopfield_energy``, ``classical_hopfield_update``, ``effective_patterns``,
  ``retrieval_accuracy``.
- :mod:`attnkit.transformers.vit`: ``patchify``, ``PatchEmbedding``, ``Block``, ``TinyViT``,
  ``attention_rollout``, ``cls_rollout_map``, ``train_classifier``, ``accuracy``.
- :mod:`attnkit.transformers.clip`: ``TinyCLIP``, ``ImageEncoder``, ``TextEncoder``,
  ``similarity``, ``info_nce``, ``info_nce_floor``, ``training_floors``, ``prompt_ensemble``,
  ``zero_shot``, ``train_clip``, ``caption_tokens``, ``caption_text``, ``all_captions``, ``VOCAB``.
- :mod:`attnkit.transformers.dense_attention`: ``criss_cross_mask``, ``criss_cross_attention``,
  ``full_attention_2d``, ``danet_channel_score`` (the paper's), ``danet_code_channel_score``
  (the authors' code), ``danet_channel_attention``,
  ``axial_attention``, ``triangle_attention``, ``attention_cost``.

The headline names are re-exported here; import the rest from their modules.
"""

from attnkit.transformers.blocks import DecoderBlock, EncoderBlock, TinyTransformer, TransformerEncoder, train_steps
from attnkit.transformers.clip import TinyCLIP, info_nce, zero_shot
from attnkit.transformers.dense_attention import axial_attention, criss_cross_attention, triangle_attention
from attnkit.transformers.gat import GATLayer, gat_attention
from attnkit.transformers.hopfield import hopfield_retrieve, hopfield_update
from attnkit.transformers.nonlocal_block import NonLocalBlock, nonlocal_attention
from attnkit.transformers.positions import LearnedPositions, apply_rotary, rotary_score, sinusoidal_positions
from attnkit.transformers.relational import AttentionReasoner, RelationNetwork
from attnkit.transformers.sets import DeepSets, SetTransformer
from attnkit.transformers.vit import TinyViT, attention_rollout, patchify

__all__ = [
    "sinusoidal_positions",
    "LearnedPositions",
    "apply_rotary",
    "rotary_score",
    "EncoderBlock",
    "DecoderBlock",
    "TransformerEncoder",
    "TinyTransformer",
    "train_steps",
    "SetTransformer",
    "DeepSets",
    "RelationNetwork",
    "AttentionReasoner",
    "nonlocal_attention",
    "NonLocalBlock",
    "gat_attention",
    "GATLayer",
    "hopfield_update",
    "hopfield_retrieve",
    "TinyViT",
    "patchify",
    "attention_rollout",
    "TinyCLIP",
    "info_nce",
    "zero_shot",
    "criss_cross_attention",
    "axial_attention",
    "triangle_attention",
]
