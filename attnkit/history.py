"""The history of attention as one data table: it drives the intro timeline and chapter links.

Each :class:`Milestone` names the years, the idea, the bibliography keys of the original work
(``references.bib``) and the chapter (a docname of ``_toc.yml``) that teaches it, or ``None``
while that chapter is still to be written. The intro page draws :func:`plot_timeline` and
prints :func:`chapter_links_markdown` from this table; a test checks that every chapter named
here is in the table of contents and every key is in the bibliography, so they cannot drift.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import date

import matplotlib.pyplot as plt
from matplotlib.patches import Patch


@dataclass(frozen=True)
class Milestone:
    """One row of the history: ``start``-``end`` years, the idea, its references and chapter."""

    start: int
    end: int
    idea: str
    refs: tuple[str, ...]
    chapter: str | None
    era: str

    @property
    def years(self) -> str:
        return str(self.start) if self.end == self.start else f"{self.start}-{str(self.end)[-2:]}"


ERAS = ("Before deep learning", "Recurrent attention", "The Transformer era", "Scaling attention",
        "Language models")

HISTORY: tuple[Milestone, ...] = (
    Milestone(1953, 1967, "Cocktail party, filter and attenuation models, partial report, saccades",
              ("cherry1953", "broadbent1958", "moray1959", "sperling1960", "treisman1960", "deutsch1963",
               "treisman1964", "yarbus1967"),
              "chapters/part1/cocktail-party", ERAS[0]),
    Milestone(1986, 1987, "Sigma-pi units and higher-order networks",
              ("rumelhart1986framework", "giles1987"), "chapters/part1/sigma-pi", ERAS[0]),
    Milestone(1987, 1992, "Fast weights: a slow net programs a fast one",
              ("hinton1987fast", "schmidhuber1992"), "chapters/part1/fast-weights", ERAS[0]),
    Milestone(1998, 1998, "Bilateral filter: each pixel attends to its neighbours",
              ("tomasi1998", "aurich1995", "smith1997"), "chapters/part1/bilateral-filter", ERAS[0]),
    Milestone(2005, 2005, "Non-local means (and Nadaraya-Watson kernel regression, 1964)",
              ("buades2005", "nadaraya1964", "watson1964"), "chapters/part1/non-local-means", ERAS[0]),
    Milestone(2014, 2015, "Seq2seq with attention: Bahdanau's additive and Luong's global/local attention",
              ("kalchbrenner2013", "cho2014", "cho2014properties", "sutskever2014", "bahdanau2015", "luong2015"),
              "chapters/part2/seq2seq", ERAS[1]),
    Milestone(2014, 2014, "Attentional neural network: top-down feature selection by cognitive feedback",
              ("wang2014ann",), "chapters/part2/show-attend-tell", ERAS[1]),
    Milestone(2015, 2015, "Attention in vision: show, attend and tell", ("xu2015", "mnih2014", "stollenga2014"),
              "chapters/part2/show-attend-tell", ERAS[1]),
    Milestone(2016, 2016, "Self-attention in RNNs, decomposable attention, structured embeddings",
              ("cheng2016", "parikh2016", "lin2017"), "chapters/part2/self-attention-2016", ERAS[1]),
    Milestone(2017, 2017, "The Transformer; set transformers and relation networks",
              ("vaswani2017", "lee2019set", "santoro2017"), "chapters/part3/transformer", ERAS[2]),
    Milestone(2018, 2018, "Non-local neural networks and graph attention",
              ("wang2018nonlocal", "velickovic2018", "kipf2017"), "chapters/part3/attention-everywhere", ERAS[2]),
    Milestone(2018, 2024, "Decoder-only language models: GPT, the KV cache, multi-query and grouped-query "
              "attention, paged and latent caches",
              ("radford2018gpt", "radford2019gpt2", "shazeer2019mqa", "ainslie2023gqa", "kwon2023vllm",
               "deepseek2024v2"), "chapters/part5/decoder-kv-cache", ERAS[4]),
    Milestone(2019, 2021, "Modern Hopfield networks, ViT, CLIP, CCNet/DANet, AlphaFold",
              ("ramsauer2021", "dosovitskiy2021", "radford2021", "huang2019ccnet", "fu2019danet",
               "jumper2021"), "chapters/part3/memories-and-giants", ERAS[2]),
    Milestone(2019, 2020, "Efficient transformers: sparse, LSH (Reformer), low-rank (Linformer), "
              "random features (Performer)",
              ("child2019", "beltagy2020", "kitaev2020", "wang2020linformer", "katharopoulos2020",
               "choromanski2021", "tay2022"), "chapters/part4/efficient-transformers", ERAS[3]),
    Milestone(2020, 2024, "Long context: rotary and ALiBi positions, position interpolation, sliding windows, "
              "attention sinks",
              ("su2021rope", "press2022alibi", "chen2023pi", "beltagy2020", "jiang2023mistral", "xiao2024streaming"),
              "chapters/part5/long-context", ERAS[4]),
    Milestone(2022, 2024, "FlashAttention 1-2: online softmax and IO-aware exact attention, in Triton",
              ("milakov2018", "rabe2021", "dao2022", "dao2024", "tillet2019"), "chapters/part4/flash-attention",
              ERAS[3]),
    Milestone(2023, 2023, "Beyond one device: sequence parallelism, ring attention, striped and zig-zag layouts, "
              "DeepSpeed-Ulysses", ("li2023sequence", "liu2023ring", "brandon2023striped", "jacobs2023ulysses"),
              "chapters/part4/ring-attention", ERAS[3]),
)
"""The book's history table, in chronological order."""

INTRO_CHAPTER = "chapters/what-is-attention"
"""The chapter that sets up the notation every other chapter uses."""


def chapters() -> list[str]:
    """Docnames of the chapters the history table links to, in order (no duplicates)."""
    out: list[str] = []
    for m in HISTORY:
        if m.chapter and m.chapter not in out:
            out.append(m.chapter)
    return out


def plot_timeline(history: tuple[Milestone, ...] = HISTORY, ax: plt.Axes | None = None, *,
                  last_year: int | None = None, fontsize: float = 10.0) -> plt.Axes:
    """Draw the history as a timeline: one bar per milestone, coloured by era.

    The x axis runs from 1950 to ``last_year`` (default: the current year). Each bar carries
    its years and idea, wrapped, at ``fontsize`` points (10 or more, so it reads at the page's
    width): right of the bar in the first half of the axis, left of it in the second, so that
    no label runs off the axes. Milestones whose chapter is not written yet are drawn hollow.
    """
    first_year = 1950
    last_year = date.today().year if last_year is None else int(last_year)
    if last_year <= max(m.end for m in history):
        raise ValueError(f"last_year must come after the last milestone "
                         f"({max(m.end for m in history)}); got {last_year}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.62 * len(history) + 1.6))
    colors = dict(zip(ERAS, plt.get_cmap("tab10").colors))
    middle = (first_year + last_year) / 2
    for row, m in enumerate(history):
        y = len(history) - 1 - row
        width = max(m.end - m.start, 0.8)
        ax.barh(y, width, left=m.start, height=0.6, color=colors[m.era] if m.chapter else "white",
                edgecolor=colors[m.era], linewidth=1.5)
        label = textwrap.fill(f"{m.years}  {m.idea}", width=56)
        if m.start < middle:
            ax.text(m.start + width + 0.8, y, label, va="center", ha="left", fontsize=fontsize)
        else:
            ax.text(m.start - 0.8, y, label, va="center", ha="right", fontsize=fontsize)
    # one swatch per era (an empty barh would draw every swatch in the default colour)
    handles = [Patch(facecolor=c, edgecolor=c, label=era) for era, c in colors.items()]
    ax.set_yticks([])
    ax.set_ylim(-0.7, len(history) - 0.3)
    ax.set_xlim(first_year, last_year)
    ticks = [*range(first_year, last_year - 4, 10), last_year]
    ax.set_xticks(ticks)
    ax.tick_params(axis="x", labelsize=fontsize)
    ax.set_xlabel("year", fontsize=fontsize)
    title = "Attention, from the cocktail party to FlashAttention"
    ax.set_title(title + (" (hollow: chapter to come)" if any(m.chapter is None for m in history) else ""),
                 fontsize=fontsize + 2)
    # at most three eras a row: a wider legend would make tight_layout shrink the axes
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3,
              fontsize=fontsize, frameon=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax


def chapter_links_markdown(history: tuple[Milestone, ...] = HISTORY) -> str:
    """A MyST Markdown table: years, idea, chapter link (``{doc}``) and citations (``{cite:p}``)."""
    lines = ["| Years | Idea | Chapter | Original work |", "|---|---|---|---|"]
    for m in history:
        link = f"{{doc}}`/{m.chapter}`" if m.chapter else "*to come*"
        cites = f"{{cite:p}}`{','.join(m.refs)}`"
        lines.append(f"| {m.years} | {m.idea} | {link} | {cites} |")
    return "\n".join(lines)
