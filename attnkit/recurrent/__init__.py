"""Part II: recurrent attention (2014 to 2016). Chapters: *Seq2seq with attention*, *Show, attend
and tell*, *Self-attention arrives*.

- :mod:`attnkit.recurrent.seq2seq`: a GRU encoder-decoder with Bahdanau (additive, attend then
  step) and Luong (dot / general / concat, global or local, step then attend) attention:
  ``Seq2Seq``, ``Encoder``, ``BahdanauDecoder``, ``LuongDecoder``, ``Score``, ``local_mask``,
  ``train_seq2seq``, ``translate``, ``evaluate``, ``token_accuracy``, ``edit_accuracy``.
- :mod:`attnkit.recurrent.show_attend_tell`: a captioner with soft and (REINFORCE) hard attention
  over a grid of image features: ``ShowAttendTell``, ``GridEncoder``, ``coordinate_channels``,
  ``caption_loss``, ``train_captioner``, ``caption_accuracy``, ``attention_on_object``,
  ``upsample_weights``.
- :mod:`attnkit.recurrent.self_attention`: attention within a sentence for inference:
  ``BagOfWords``, ``DecomposableAttention``, ``LSTMN``, ``LSTMNClassifier``,
  ``StructuredSelfAttention``, ``attention_penalty``, ``train_nli``, ``nli_accuracy``,
  ``pair_features``, ``perturbation_effect``.
- :mod:`attnkit.recurrent.feedback`: Wang et al. (2014), top-down feature selection by a class
  hypothesis: ``FeedbackClassifier``, ``feedback_task``, ``train_feedback``, ``feedback_run``.
- :mod:`attnkit.recurrent.records`: the multi-seed runs of the Part II chapters
  (``python -m attnkit.recurrent.records seq2seq|captions|nli|feedback``) and ``load_record``.

Their data sets live in ``attnkit.datasets`` (``translation``, ``shapes``, ``nli``).
"""

from attnkit.recurrent.self_attention import (
    LSTMN,
    BagOfWords,
    DecomposableAttention,
    LSTMNClassifier,
    StructuredSelfAttention,
    attention_penalty,
    nli_accuracy,
    train_nli,
)
from attnkit.recurrent.seq2seq import BahdanauDecoder, Encoder, LuongDecoder, Seq2Seq, train_seq2seq, translate
from attnkit.recurrent.show_attend_tell import ShowAttendTell, caption_accuracy, train_captioner

__all__ = [
    "Seq2Seq",
    "Encoder",
    "BahdanauDecoder",
    "LuongDecoder",
    "train_seq2seq",
    "translate",
    "ShowAttendTell",
    "train_captioner",
    "caption_accuracy",
    "BagOfWords",
    "DecomposableAttention",
    "LSTMN",
    "LSTMNClassifier",
    "StructuredSelfAttention",
    "attention_penalty",
    "train_nli",
    "nli_accuracy",
]
