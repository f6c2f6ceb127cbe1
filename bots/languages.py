"""The languages vstage knows by code: their names, which ones hearing (Whisper) understands,
and how a code a user wrote is normalised ("de-AT" -> "de", "deu" -> a hint at "de").

A leaf module (it imports nothing of vstage), so settings validation can use it.
"""

from __future__ import annotations

__all__ = [
    "ISO_639_2_ALIASES",
    "WHISPER_LANGUAGES",
    "base_language",
    "language_name",
]

#: The 99 languages multilingual Whisper models (tiny ... large-v2, base included) know, code ->
#: English name, as Whisper's tokenizer lists them. ``tiny.en`` knows English only.
WHISPER_LANGUAGES: dict[str, str] = {
    "en": "English", "zh": "Chinese", "de": "German", "es": "Spanish", "ru": "Russian",
    "ko": "Korean", "fr": "French", "ja": "Japanese", "pt": "Portuguese", "tr": "Turkish",
    "pl": "Polish", "ca": "Catalan", "nl": "Dutch", "ar": "Arabic", "sv": "Swedish",
    "it": "Italian", "id": "Indonesian", "hi": "Hindi", "fi": "Finnish", "vi": "Vietnamese",
    "he": "Hebrew", "uk": "Ukrainian", "el": "Greek", "ms": "Malay", "cs": "Czech",
    "ro": "Romanian", "da": "Danish", "hu": "Hungarian", "ta": "Tamil", "no": "Norwegian",
    "th": "Thai", "ur": "Urdu", "hr": "Croatian", "bg": "Bulgarian", "lt": "Lithuanian",
    "la": "Latin", "mi": "Maori", "ml": "Malayalam", "cy": "Welsh", "sk": "Slovak",
    "te": "Telugu", "fa": "Persian", "lv": "Latvian", "bn": "Bengali", "sr": "Serbian",
    "az": "Azerbaijani", "sl": "Slovenian", "kn": "Kannada", "et": "Estonian",
    "mk": "Macedonian", "br": "Breton", "eu": "Basque", "is": "Icelandic", "hy": "Armenian",
    "ne": "Nepali", "mn": "Mongolian", "bs": "Bosnian", "kk": "Kazakh", "sq": "Albanian",
    "sw": "Swahili", "gl": "Galician", "mr": "Marathi", "pa": "Punjabi", "si": "Sinhala",
    "km": "Khmer", "sn": "Shona", "yo": "Yoruba", "so": "Somali", "af": "Afrikaans",
    "oc": "Occitan", "ka": "Georgian", "be": "Belarusian", "tg": "Tajik", "sd": "Sindhi",
    "gu": "Gujarati", "am": "Amharic", "yi": "Yiddish", "lo": "Lao", "uz": "Uzbek",
    "fo": "Faroese", "ht": "Haitian Creole", "ps": "Pashto", "tk": "Turkmen",
    "nn": "Norwegian Nynorsk", "mt": "Maltese", "sa": "Sanskrit", "lb": "Luxembourgish",
    "my": "Myanmar", "bo": "Tibetan", "tl": "Tagalog", "mg": "Malagasy", "as": "Assamese",
    "tt": "Tatar", "haw": "Hawaiian", "ln": "Lingala", "ha": "Hausa", "ba": "Bashkir",
    "jw": "Javanese", "su": "Sundanese",
}

#: Three-letter codes people write for the two-letter ones vstage uses (ISO 639-2/T and /B),
#: so an error can say what was probably meant.
ISO_639_2_ALIASES: dict[str, str] = {
    "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es",
    "ita": "it", "por": "pt", "nld": "nl", "dut": "nl", "jpn": "ja", "zho": "zh", "chi": "zh",
    "kor": "ko", "rus": "ru", "pol": "pl", "tur": "tr", "ara": "ar", "swe": "sv", "ukr": "uk",
    "ces": "cs", "cze": "cs", "ell": "el", "gre": "el", "heb": "he", "hin": "hi", "dan": "da",
    "fin": "fi", "nor": "no", "hun": "hu", "ron": "ro", "rum": "ro", "cat": "ca", "vie": "vi",
}


def base_language(code: str) -> str:
    """The language part of a code, lower-cased: ``"de-AT"`` -> ``"de"``, ``"pt_BR"`` ->
    ``"pt"``."""
    return code.replace("_", "-").split("-", 1)[0].strip().lower()


def language_name(code: str) -> str:
    """The English name of ``code`` ("de-AT" -> "German"), or the code itself when unknown."""
    return WHISPER_LANGUAGES.get(base_language(code), code)
