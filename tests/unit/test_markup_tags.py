"""Inline tags put back into a translated sentence (pipeline/documents/markup/tags.py)."""

import random

from pipeline.documents.markup import Mark, place
from pipeline.documents.markup.tags import render


def wrap(source: str, words: str, name: str = "b", alone: int = -1) -> Mark:
    start = source.index(words)
    return Mark(start, start + len(words), f"<{name}>", f"</{name}>", alone=alone)


def placed(source, translation, marks, alone=(), align=None):
    place(source, translation, marks, list(alone), align)
    return render(translation, marks, str)


def test_a_mark_goes_around_its_text_translated_alone():
    source = "A man with a red dog runs."
    out = placed(source, "Ein Mann mit einem roten Hund rennt.", [wrap(source, "red dog", alone=0)], ["roter Hund"])
    assert out == "Ein Mann mit einem <b>roten Hund</b> rennt."


def test_an_exact_copy_of_the_text_alone_wins_and_whole_words_only():
    source = "The boy and the ball."
    out = placed(source, "Der Ball und der Junge.", [wrap(source, "ball", alone=0)], ["Ball"])
    assert out == "Der <b>Ball</b> und der Junge."
    out = placed("B b.", "Bb B.", [Mark(2, 3, "<i>", "</i>", alone=0)], ["B"])
    assert out == "Bb <i>B</i>."  # not inside "Bb"


def test_a_mark_around_the_whole_sentence_stays_around_it():
    source = "A dog runs."
    assert placed(source, "Ein Hund rennt.", [Mark(0, len(source), "<a>", "</a>")]) == "<a>Ein Hund rennt</a>."


def test_without_a_match_marks_at_the_edges_stay_at_the_edges():
    source = "Click here to see the dogs"
    marks = [wrap(source, "Click here", "a", alone=0)]
    assert placed(source, "Klicken Sie hier, um die Hunde zu sehen", marks, ["xyz"]).startswith("<a>Klicken")
    marks = [wrap(source, "the dogs", "a", alone=0)]
    assert placed(source, "Klicken Sie hier, um Hunde zu sehen", marks, ["qqq"]).endswith("sehen</a>")


def test_opaque_elements_replace_their_copy_and_void_ones_are_kept():
    source = "Run ls now."
    code = Mark(4, 6, "<code>ls</code>", kind="opaque")
    img = Mark(7, 7, "<img>", kind="void")
    out = placed(source, "Führe ls jetzt aus.", [code, img])
    assert out.startswith("Führe <code>ls</code> ") and out.count("<img>") == 1 and "ls" not in out.replace("ls<", "")


def test_nested_marks_stay_nested_and_siblings_never_cross():
    source = "A woman in a blue shirt sits."
    outer = wrap(source, "in a blue shirt", "em", alone=0)
    inner = wrap(source, "blue", "strong", alone=1)
    outer.children = [inner]
    out = placed(source, "Eine Frau in einem blauen Hemd sitzt.", [outer], ["in einem blauen Hemd", "blau"])
    assert out == "Eine Frau <em>in einem <strong>blauen</strong> Hemd</em> sitzt."
    a, b = wrap(source, "woman", "i", alone=0), wrap(source, "shirt", "u", alone=1)
    out = placed(source, "Eine Frau sitzt.", [a, b], ["Frau", "Frau"])  # both found at the same words
    assert out.count("<i>") == out.count("</i>") == out.count("<u>") == out.count("</u>") == 1
    assert out.index("</i>") <= out.index("<u>") or out.index("</u>") <= out.index("<i>")


def balanced(text: str, names) -> bool:
    stack = []
    for i in range(len(text)):
        for n in names:
            if text.startswith(f"<{n}>", i):
                stack.append(n)
            elif text.startswith(f"</{n}>", i):
                if not stack or stack.pop() != n:
                    return False
    return not stack


def test_random_marks_and_translations_are_always_balanced_never_dropped_or_doubled():
    rng = random.Random(7)
    vocab = "der die das Hund Katze rennt spielt im Park ein eine rote blaue schnell .".split()
    for _ in range(300):
        words = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        source = " ".join(words)
        marks = []
        for k in range(rng.randint(1, 4)):
            a = rng.randint(0, len(source))
            b = rng.randint(a, len(source))
            kind = rng.choice(["wrap", "wrap", "void", "opaque"])
            name = f"t{k}"
            marks.append(Mark(a, b if kind != "void" else a, f"<{name}>", f"</{name}>" if kind == "wrap" else "",
                              kind=kind, alone=k if kind == "wrap" else -1))
        marks.sort(key=lambda m: (m.start, -m.end))
        roots, stack = [], []  # source nesting: a mark inside the previous one is its child, crossing ones siblings
        for m in marks:
            while stack and not (stack[-1].start <= m.start and m.end <= stack[-1].end):
                stack.pop()
            (stack[-1].children if stack else roots).append(m)
            if m.kind == "wrap":
                stack.append(m)
        translation = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        alone = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 3))) for _ in marks]
        n_words = len(translation.split()) + rng.choice([0, 0, 0, 1])  # now and then one that does not fit
        align = rng.choice([None, [rng.randint(-1, len(words)) for _ in range(n_words)]])
        out = placed(source, translation, roots, alone, align)
        for m in marks:
            name = m.open[1:-1]
            assert out.count(m.open) == 1, (source, translation, out)
            assert out.count(f"</{name}>") == (m.kind == "wrap")
        assert balanced(out, [m.open[1:-1] for m in marks if m.kind == "wrap"]), out


def test_a_sure_alignment_places_the_tag_on_the_aligned_words():
    """Each word of the translation names the source word the model attended to most (the model actor's
    cross-attention): the mark goes around the translated words aligned to its words, wherever they went."""
    source = "A man with a red dog runs."
    translation = "Ein Mann mit einem roten Hund rennt."
    mark = wrap(source, "red dog", alone=0)
    out = placed(source, translation, [mark], ["Mann"], align=[0, 1, 2, 3, 4, 5, 6])  # "alone" would say Mann
    assert out == "Ein Mann mit einem <b>roten Hund</b> rennt." and mark.how == "aligned"
    source = "He saw the car that was red."
    mark = wrap(source, "saw", "i", alone=0)
    out = placed(source, "Er hat das rote Auto gesehen.", [mark], ["sah"], align=[0, 0, 2, 6, 3, 1])
    assert out == "Er hat das rote Auto <i>gesehen</i>." and mark.how == "aligned"  # the last word, not "hat"


def test_an_unsure_alignment_falls_back_to_the_text_translated_alone():
    source = "A man with a red dog runs."
    translation = "Ein Mann mit einem roten Hund rennt."
    for align in ([0, 4, 2, 3, 1, 1, 5], [0, 1, 2], None, [0, 1, 2, 3, 3, 3, 6]):  # scattered, misfit, none, no hit
        mark = wrap(source, "red dog", alone=0)
        out = placed(source, translation, [mark], ["roter Hund"], align=align)
        assert out == "Ein Mann mit einem <b>roten Hund</b> rennt." and mark.how == "alone", align


def test_aligned_marks_stay_nested_and_siblings_never_cross():
    source = "A red dog and a cat play."
    translation = "Ein roter Hund und eine Katze spielen."
    inner = wrap(source, "dog", "b")
    outer = Mark(source.index("red"), source.index("dog") + 3, "<a>", "</a>", children=[inner])
    cat = wrap(source, "cat", "i")
    # The alignment puts "Katze" on "dog" too: the sibling placed first keeps it, each tag still written once.
    out = placed(source, translation, [outer, cat], align=[0, 1, 2, 3, 4, 2, 6])
    assert out.count("<a>") == out.count("</a>") == out.count("<b>") == out.count("<i>") == 1
    assert out.startswith("Ein <a>roter <b>Hund</b></a> und") and balanced(out, ["a", "b", "i"]), out
