"""--format markdown: documents cut into segments and put back, their structure, links and code kept."""

import pytest
from markdown_it import MarkdownIt

from pipeline.documents.markup import split_markdown

DOCS = {
    "readme": (
        "---\ntitle: Dogs\ntags: [a, b]\n---\n# A guide to *dogs* #\n\nA man with a [red dog](https://x.org/d "
        '"The dog") runs in the **park**. Two __small__ children play.\nThe line goes on here.\n\n'
        "Setext heading\n==============\n\n- First item with `code`\n- Second *item*\n  - Nested ~~old~~ item\n"
        "* Star item\n+ Plus item\n\n1. One dog.\n2) Two dogs.\n\n> A quote with **bold**\nlazy continuation.\n"
        ">\n> > Nested quote.\n\n```python\nx = 'do not translate'\n```\n\n~~~\ntilde fence\n~~~\n\n"
        "    indented code block\n\nSee [the site][ref] and <https://example.com> or ![a dog](dog.png \"Dog\").\n\n"
        '[ref]: https://example.com/ref "Ref title"\n'),
    "table": ("| Name | What they do |\n|:-----|-------------:|\n| Anna | Walks the *big* dog. |\n"
              "| Ben | Plays `ball` \\| kicks |\n\nAfter the table.\n"),
    "breaks": "First line with a hard break  \nsecond line.\\\nThird line.\nSoft break here.\n",
    "escapes": "Use \\*stars\\* and &amp; and &copy; and a_b_c and 2 * 3.\n\n\\# Not a heading\n",
    "html": "<div class=\"box\">\n<p>Inner <b>html</b> text.</p>\n</div>\n\nText with <span>inline html</span>.\n",
    "crlf": "# Title\r\n\r\nA paragraph\r\non two lines.\r\n\r\n- item one\r\n- item two\r\n",
    "rtl": "# مرحبا\n\nهذا **نص** عربي. A mixed line with עברית.\n",
    "emphasis": "***Strong em*** and *em **strong** in* a _line_. `` code with ` tick ``.\n",
}


def shuffle(text: str) -> str:
    return " ".join(reversed(text.split())).upper()


def structure(doc: str):
    """Block tokens (type, tag, markup, nesting), fenced and inline code, and every link and image address."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(doc)
    blocks = [(t.type, t.tag, t.markup, t.info) for t in tokens if t.type != "inline"]
    code = [t.content for t in tokens if t.type in ("fence", "code_block", "html_block")]
    inline = [(c.type, c.markup, c.attrs.get("href"), c.attrs.get("src"), c.attrs.get("title"))
              for t in tokens if t.type == "inline" for c in t.children
              if c.type in ("link_open", "image", "code_inline", "strong_open", "em_open", "s_open")]
    return blocks, sorted(code), sorted(inline, key=str)


@pytest.mark.parametrize("name", DOCS)
def test_identity_round_trip_is_byte_for_byte(name):
    layout = split_markdown(DOCS[name])
    assert not layout.unparsable and layout.segments
    assert layout.fill(layout.segments) == DOCS[name]


@pytest.mark.parametrize("name", ["readme", "table", "breaks", "escapes", "crlf", "rtl", "emphasis"])
def test_translated_documents_keep_their_structure_links_and_code(name):
    doc = DOCS[name]
    layout = split_markdown(doc)
    out = layout.fill([shuffle(s) for s in layout.segments])
    assert structure(out) == structure(doc)


def test_front_matter_code_and_addresses_are_kept_byte_for_byte():
    doc = DOCS["readme"]
    out = split_markdown(doc).fill([shuffle(s) for s in split_markdown(doc).segments])
    for kept in ["---\ntitle: Dogs\ntags: [a, b]\n---\n", "```python\nx = 'do not translate'\n```",
                 "    indented code block", '](https://x.org/d "The dog")', "<https://example.com>",
                 '![a dog](dog.png "Dog")', '[ref]: https://example.com/ref "Ref title"', "__SMALL__",
                 "`code`", "* ", "+ ", "2) "]:
        assert kept in out, kept


def test_a_sentence_with_a_link_is_one_segment_and_markers_come_back_as_they_were():
    layout = split_markdown("A man with a [red dog](/d) runs and __fast__.\n")
    assert layout.segments == ["A man with a red dog runs and fast.", "red dog", "fast"]
    out = layout.fill(["Ein Mann mit einem roten Hund rennt und schnell.", "roter Hund", "schnell"])
    assert out == "Ein Mann mit einem [roten Hund](/d) rennt und __schnell__.\n"


def test_translated_text_is_escaped_where_it_would_become_markup():
    layout = split_markdown("Plain words here.\n")
    assert layout.fill(["Ein *Stern* und [Klammer]"]) == "Ein \\*Stern\\* und \\[Klammer\\]\n"


def test_html_blocks_go_through_the_html_reader():
    layout = split_markdown(DOCS["html"])
    assert "Inner html text." in layout.segments and "inline html" in layout.segments


HOSTILE = {
    "deep quotes": ">" * 5000 + " text\n",
    "deep brackets": "[" * 5000 + "x" + "]" * 5000 + "\n",
    "deep emphasis": "*" * 5000 + "a" + "*" * 5000 + "\n",
    "unclosed fence": "Text before.\n\n```\nnever closed\n",
    "unclosed html": "<div>\n<p>open <b>bold\n\nAfter.\n",
    "deep lists": "".join("  " * i + "- item\n" for i in range(300)),
    "garbage": "\x00\ufffd[]()![](<>)**__``~~|||\\\\&&;;\n",
    "many paragraphs": "A dog runs in the *park*. Two cats sleep.\n\n" * 300,
    "one megabyte": "Intro text.\n\n```\n" + "x = 1\n" * 170_000 + "```\n\nOutro.\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_documents_get_a_layout_never_an_exception(name):
    doc = HOSTILE[name]
    layout = split_markdown(doc)
    assert layout.fill(layout.segments) == doc
    assert isinstance(layout.fill([shuffle(s) for s in layout.segments]), str)
