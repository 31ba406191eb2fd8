"""pipeline/languages/: language identification, what a row's language means, quality flags; and the tokenize
and detokenize stages with --source-lang auto, called directly with the shipped model (no Ray, no decoding)."""

import pyarrow as pa
import pytest

from pipeline.columns import DETECTED, STATUS, RowStatus
from pipeline.languages import Flag, ModelLanguages, flag_counts, flag_rows, language_status
from pipeline.languages.flags import copied_source, ratio_outliers, repeated_ngrams
from pipeline.languages.stage import detect_languages, detector, fill_from_groups
from pipeline.settings import LanguageChoice, TranslationSettings
from tests.conftest import ROOT

MODEL = f"{ROOT}/models/multi30k-en-de"
EN, DE, FR = ("A man in a blue shirt is standing on a ladder.", "Ein Mann in einem blauen Hemd steht auf einer Leiter.",
              "Un homme en chemise bleue est debout sur une échelle.")


def test_the_detector_names_languages_and_declines_what_it_cannot_call():
    assert detector(0.5).detect([EN, DE, FR, "", None, "ok", "1 2 3", "Hallo"]) == ["en", "de", "fr", "", "", "", "",
                                                                                    ""]


@pytest.mark.parametrize("source, target, model, expected", [
    ("", "de", ModelLanguages("en", "de"), RowStatus.UNKNOWN_LANGUAGE),
    ("de", "de", ModelLanguages("en", "de"), RowStatus.SAME_LANGUAGE),
    ("de", "deu_Latn", ModelLanguages(), RowStatus.SAME_LANGUAGE),  # normalised: the code before any "_"
    ("fr", "de", ModelLanguages("en", "de"), RowStatus.UNSUPPORTED_LANGUAGE),
    ("en", "de", ModelLanguages("en", "de"), None),
    ("fr", "de", ModelLanguages(), None),  # a model that declares no source language takes any
    ("fr", "", ModelLanguages("en"), RowStatus.UNSUPPORTED_LANGUAGE),
])
def test_language_status(source, target, model, expected):
    assert language_status(source, target, model) == expected


def test_model_languages_count_plain_codes_only():
    assert ModelLanguages.declared("en", "de") == ModelLanguages("en", "de")
    assert ModelLanguages.declared("mul", "en") == ModelLanguages("", "en")  # OPUS-MT group code: no one language
    assert ModelLanguages.declared(None, "pt-BR") == ModelLanguages("", "pt")


def test_auto_rows_take_their_column_then_detection_then_the_fallback():
    table = pa.table({"lang": ["de", None, None], DETECTED: ["en", "fr", None]})
    assert LanguageChoice("auto", "de", "lang").of_rows(table)[0] == ["de", "fr", ""]
    assert LanguageChoice("auto:en", "de", "lang").of_rows(table)[0] == ["de", "fr", "en"]
    assert LanguageChoice("en").of_rows(table)[0] == ["en"] * 3  # no auto: detection is not read
    with pytest.raises(ValueError, match="auto"):
        TranslationSettings(source_lang="automatic")


def test_document_segments_not_identified_take_their_documents_language():
    # doc 1: English paragraph, German paragraph and a heading too short to call; doc 2: nothing to call
    langs = fill_from_groups(["en", "de", "", ""], [60, 30, 5, 4], [1, 1, 1, 2])
    assert langs == ["en", "de", "en", ""]
    table = pa.table({"id": [1, 1, 1], "source": [f"{EN} {EN}", DE, "Hi!"]})  # English: most characters
    out = detect_languages(table, "source", 0.5, group_column="id")
    assert out.column(DETECTED).to_pylist() == ["en", "de", "en"]
    assert detect_languages(table, "source", 0.5).column(DETECTED).to_pylist() == ["en", "de", None]


@pytest.fixture(scope="module")
def tok_detok():
    from pipeline.stages import Detokenize, Tokenize

    choice = LanguageChoice("auto", "de")
    return (Tokenize(MODEL, "source", 256, "split", {}, languages=choice, model_languages=ModelLanguages("en", "de")),
            Detokenize(MODEL, nbest=1, write_scores=False, storage_options={}, source_column="source"))


def test_auto_rows_in_the_target_or_another_language_are_not_decoded(tok_detok):
    from pipeline.columns import HYP_IDS, PIECES

    tok, detok = tok_detok
    table = detect_languages(pa.table({"id": [1, 2, 3, 4, 5], "source": [EN, DE, FR, "Hi", ""]}), "source", 0.5)
    out = tok(table)
    assert out.column(STATUS).to_pylist() == ["ok", "same_language", "unsupported_language", "unknown_language",
                                              "empty"]
    assert [bool(p) for p in out.column(PIECES).to_pylist()] == [True, False, False, False, False]
    # what the model actor hands on for rows it did not decode: no hypothesis
    hyps = pa.array([[[5, 6]], [[]], [[]], [[]], [[]]], pa.list_(pa.list_(pa.int32())))
    decoded = (out.drop_columns([PIECES, "__target_prefix"]).append_column(HYP_IDS, hyps)
               .append_column("score", pa.array([None] * 5, pa.float64()))
               .append_column("nbest_scores", pa.array([[]] * 5, pa.list_(pa.float64()))))
    texts = detok(decoded).column("translation").to_pylist()
    assert texts[1] == DE and texts[2:] == ["", "", ""] and texts[0] != EN


def test_repeated_ngrams():
    assert repeated_ngrams("Zwei 8 8 8 8")
    assert repeated_ngrams("ein Hund auf dem auf dem auf dem Rasen")
    assert repeated_ngrams("Ooooooooh!")
    assert not repeated_ngrams("Ein Mann sehr sehr sehr groß.")  # a word three times is still language
    assert not repeated_ngrams("Ein Hund läuft über die Wiese.")


def test_copied_source():
    assert copied_source("A dog runs.", "a dog runs")
    assert copied_source("A man in a red shirt is running.", "Ein man in a red shirt is running.")
    assert not copied_source("A man in a red shirt.", "Ein Mann in einem roten Hemd.")
    assert not copied_source("Tom is here.", "Tom ist hier.")  # short: only exact copies count


def test_length_ratio_outliers_are_measured_on_the_rows_themselves():
    ratios = [0.1 + 0.01 * (i % 7) for i in range(40)] + [1.5, -1.2]
    out = ratio_outliers(ratios)
    assert out[-2:] == [True, True] and not any(out[:-2])
    assert not any(ratio_outliers([0.1, 2.0, 0.1]))  # too few rows to know the usual range


def test_flags_on_crafted_rows():
    sources = [EN, "A dog runs on the grass.", "A dog runs on the green grass near a lake.", EN, EN, "Two dogs."]
    sources += [f"A dog number {i} runs." for i in range(30)]
    translations = ["Ein Mann in einem blauen Hemd steht auf einer Leiter.", "Zwei 8 8 8 8",
                    "A dog runs on the green grass near a lake.",
                    "Un homme en chemise bleue est debout sur une échelle.", DE, "Zwei Hunde."]
    translations += [f"Ein Hund Nummer {i} läuft." for i in range(30)]
    statuses = ["ok", "length_limit", "ok", "ok", "same_language", "ok"] + ["ok"] * 30
    translations[5] = "Zwei Hunde laufen über eine große grüne Wiese neben einem See, und die Sonne scheint hell."
    flags = flag_rows(sources, translations, statuses, "de", detector(0.5))
    assert flags[0] == []
    assert Flag.REPEATED_NGRAMS in flags[1]
    assert flags[2][:2] == [Flag.COPIED_SOURCE, Flag.WRONG_TARGET_LANGUAGE]
    assert Flag.WRONG_TARGET_LANGUAGE in flags[3]
    assert flags[4] == []  # same_language: copied on purpose, not doubted
    assert Flag.LENGTH_RATIO in flags[5]
    assert not any(flags[6:])
    counts = flag_counts(flags)
    assert counts["repeated_ngrams"] == 1 and counts["any"] == sum(1 for f in flags if f)
    assert flag_rows(sources, translations, statuses, "", detector(0.5))[3] == []  # no target: not judged
