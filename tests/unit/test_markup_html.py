"""--format html: pages cut into segments and put back, every byte but the translated text kept."""

import re

import pytest

from pipeline.documents.markup import layout as markup_layout
from pipeline.documents.markup import split_html
from pipeline.documents.markup.html import tokens

PAGES = {
    "blog": (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <title>Dogs &amp; parks</title>\n'
        "  <style>p > a { color: red } /* <b>not markup</b> */</style>\n"
        '  <script>if (a < b && c > d) { document.write("<p>hi</p>"); }</script>\n</head>\n<body>\n'
        "<!-- navigation -->\n<nav><ul><li><a href='/'>Home</a></li><li><a href=\"/about?x=1&amp;y=2\">About us</a>"
        "</li></ul></nav>\n<article>\n<h1 class=\"title\">A man with a dog</h1>\n"
        "<p>A man with a <a href=\"/dog\" title=\"The dog\">red dog</a> runs in the <b>park</b>. Two <i>small\n"
        "    children</i> play&nbsp;outside. It&#8217;s caf&eacute; time&hellip;</p>\n"
        '<p><img src="a.png" alt="A brown dog"> A woman <em>in a <strong>blue</strong> shirt</em> sits.</p>\n'
        "</article>\n<footer>&copy; 2024 Example</footer>\n</body>\n</html>\n"),
    "table": (
        "<table border=1 class='data'>\n<caption>People and dogs</caption>\n<thead><tr><th>Name<th>What they do"
        "</thead>\n<tbody>\n<tr><td>Anna</td><td>She walks the <span class=x>big</span> dog.</td></tr>\n"
        "<tr><td colspan=\"2\">Two men play soccer.</td></tr>\n</tbody></table>\n"),
    "malformed": (
        "<div><p>An unclosed paragraph<p>Another one <b>bold <i>mixed</b> up</i> here.\n<li>A list item"
        "<li>Second item</div></div>\n<P CLASS=Upper>Upper case tags.</P>\n<p>Text with a < sign and & alone "
        "and a stray </span> tag.</p>\n<p>Unclosed <b>bold at the end"),
    "crlf": ("<html>\r\n<body>\r\n\t<p>A dog runs.\r\n\tA cat sleeps.</p>\r\n\t<p>A <a\r\n href='x'>link</a> "
             "here.</p>\r\n</body>\r\n</html>\r\n"),
    "rtl": ('<p dir="rtl">مرحبا بك في <b>موقعنا</b>. كيف حالك؟</p>\n<p>שלום <bdi>עולם</bdi> — '
            "a <span lang=\"he\">מילה</span> in a sentence.</p>\n"),
    "kept": (
        "<pre>  keep   this\n  exactly </pre>\n<p>Run <code>ls -l</code> to list files.</p>\n"
        '<div translate="no">Brand Name Here</div>\n<p>We love <span class="notranslate">Acme Widgets</span> '
        "a lot.</p>\n<svg><text>not text</text></svg>\n<textarea>as typed</textarea>\n"
        "<template><p>later</p></template>\n"),
    "form": (
        '<form><label for="q">Search the site</label> <input id="q" placeholder="Type a word" '
        "aria-label='Search box'> <button title=\"Go now\">Go</button>\n<select><option>First choice</option>"
        "</select></form>\n"),
}

KEPT = ["<style>p > a { color: red } /* <b>not markup</b> */</style>",
        '<script>if (a < b && c > d) { document.write("<p>hi</p>"); }</script>', "<!-- navigation -->",
        "<pre>  keep   this\n  exactly </pre>", "<code>ls -l</code>", '<div translate="no">Brand Name Here</div>',
        '<span class="notranslate">Acme Widgets</span>', "<svg><text>not text</text></svg>",
        "<textarea>as typed</textarea>", "<template><p>later</p></template>", "<!DOCTYPE html>",
        'href="/about?x=1&amp;y=2"']


def shuffle(text: str) -> str:
    """A 'translation' that changes every word and moves them: words reversed, upper case."""
    return " ".join(reversed(text.split())).upper()


def tags(html: str) -> list[str]:
    return [raw for raw, kind, _ in tokens(html) if kind in ("start", "end", "startend")]


@pytest.mark.parametrize("name", PAGES)
def test_identity_round_trip_is_byte_for_byte(name):
    layout = split_html(PAGES[name])
    assert not layout.unparsable and layout.segments
    assert layout.fill(layout.segments) == PAGES[name]


@pytest.mark.parametrize("name", PAGES)
def test_translated_pages_keep_every_tag_and_every_kept_element(name):
    page = PAGES[name]
    layout = split_html(page)
    out = layout.fill([shuffle(s) for s in layout.segments])
    # Every tag is there, as often as in the source (attributes people read are translated: compare names).
    names = sorted(re.sub(r"\s.*", "", t, flags=re.S).lower() for t in tags(page))
    assert sorted(re.sub(r"\s.*", "", t, flags=re.S).lower() for t in tags(out)) == names
    for kept in KEPT:
        assert (kept in page) <= (kept in out), kept
    # Block tags keep their order, and those without attributes to translate their bytes.
    inline = r"</?(a|b|i|em|strong|span|bdi|img|input|code|label|button)\b"

    def blocks(html):
        return [t for t in tags(html) if not re.match(inline, t, re.I)]

    assert [t for t in blocks(out) if not re.search(r"title=|placeholder=|aria-label=", t)] == [
        t for t in blocks(page) if not re.search(r"title=|placeholder=|aria-label=", t)]
    assert len(blocks(out)) == len(blocks(page))


def test_a_sentence_with_a_link_is_one_segment_and_the_link_comes_back_around_its_words():
    page = '<p>A man with a <a href="/d">red dog</a> runs.</p>'
    layout = split_html(page)
    assert layout.segments == ["A man with a red dog runs.", "red dog"]
    out = layout.fill(["Ein Mann mit einem roten Hund rennt.", "Roter Hund."])
    assert out == '<p>Ein Mann mit einem <a href="/d">roten Hund</a> rennt.</p>'


def test_elements_around_whole_sentences_stay_between_them():
    page = "<p><b>A dog runs.</b> A cat <i>sleeps</i>.</p>"
    layout = split_html(page)
    assert layout.segments == ["A dog runs.", "A cat sleeps.", "sleeps"]
    assert layout.fill(["Ein Hund rennt.", "Eine Katze schläft.", "schläft"]) == (
        "<p><b>Ein Hund rennt.</b> Eine Katze <i>schläft</i>.</p>")


def test_attributes_people_read_are_translated_and_others_kept():
    page = '<p title="A greeting" data-title="keep" class="Keep">Hi <img src="x.png" alt="a dog"> there.</p>'
    layout = split_html(page)
    assert layout.segments == ["Hi there.", "A greeting", "a dog"] or sorted(layout.segments) == sorted(
        ["Hi there.", "A greeting", "a dog"])
    out = layout.fill([{"Hi there.": "Hallo da.", "A greeting": 'Ein "Gruß"', "a dog": "ein Hund"}[s]
                       for s in layout.segments])
    assert 'title="Ein &quot;Gruß&quot;"' in out and 'data-title="keep"' in out and 'alt="ein Hund"' in out


def test_translated_text_is_escaped_and_entities_are_written_as_the_source_wrote_them():
    layout = split_html("<p>Fish &amp; chips &copy; here.</p>")
    assert layout.segments == ["Fish & chips © here."]
    assert layout.fill(["Fisch & Pommes © <hier>."]) == "<p>Fisch &amp; Pommes &copy; &lt;hier&gt;.</p>"


def test_blocks_are_segments_of_their_own():
    layout = split_html("<ul><li>One item<li>Two items</ul><br>Line one<br>Line two")
    assert layout.segments == ["One item", "Two items", "Line one", "Line two"]


HOSTILE = {
    "unclosed": "<div><p><b>text that never <i>closes",
    "lone lt": "<",
    "unclosed comment": "<p>before</p><!-- never closed <p>after</p>",
    "unclosed script": "<p>Hi.</p><script>if (a<b) { x = '</p>'",
    "broken attribute": "<a href='x title=\"y\">Link text</a> after.",
    "garbage": "\x00\ufffd<<>>&&;;</></ ><!><?php echo 1 ?>&#xZZ; &#99999999; text",
    "deep blocks": "<div>" * 20000 + "deep text" + "</div>" * 20000,
    "deep inline": "<p>" + "<b>" * 3000 + "deep bold text" + "</b>" * 3000 + " after.</p>",
    "misnested everywhere": "<b><i><u>a</b></i></u>" * 200,
    "one megabyte": "<p>Intro text.</p><script>" + "x = 1;\n" * 150_000 + "</script><p>Outro.</p>",
    "long sentence": "<p>" + "word " * 3000 + "<b>bold</b> end</p>",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_pages_get_a_layout_never_an_exception(name):
    page = HOSTILE[name]
    layout = split_html(page)
    assert layout.fill(layout.segments) == page
    assert isinstance(layout.fill([shuffle(s) for s in layout.segments]), str)


def test_a_page_over_the_size_limit_is_unparsable_and_comes_back_unchanged(monkeypatch):
    monkeypatch.setattr(markup_layout, "MAX_MARKUP_CHARS", 100)
    page = "<p>" + "A dog runs. " * 20 + "</p>"
    layout = split_html(page)
    assert layout.unparsable and layout.segments == [] and layout.fill([]) == page


def test_sentences_with_inline_tags_are_marked_and_their_alignment_places_the_tags():
    """The split stage flags the sentences whose tags an alignment places (the model actor then reads their
    cross-attention); `fill` takes one alignment per segment (None: the extra segment's way)."""
    from pipeline.documents.markup import split_html

    layout = split_html("<p>A man with a <b>red dog</b> runs.</p>\n<p>No tags here.</p>")
    assert layout.segments == ["A man with a red dog runs.", "red dog", "No tags here."]
    assert layout.marked == [True, False, False]
    translations = ["Ein Mann mit einem roten Hund rennt.", "Mann", "Keine Tags hier."]
    aligned = layout.fill(translations, [[0, 1, 2, 3, 4, 5, 6], None, None])
    assert aligned == "<p>Ein Mann mit einem <b>roten Hund</b> rennt.</p>\n<p>Keine Tags hier.</p>"
    assert layout.fill(translations) == "<p>Ein <b>Mann</b> mit einem roten Hund rennt.</p>\n<p>Keine Tags hier.</p>"
