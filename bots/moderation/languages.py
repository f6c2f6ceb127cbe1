"""Built-in word lists per language: blocked words, insults the persona never says, and
phrases that try to instruct the persona ("ignoriere deine Anweisungen").

English lists live in :mod:`bots.moderation.settings` and always apply; the lists here apply
for each language in ``ModerationSettings.languages`` (the persona's own language is added
when its file loads). Entries are written as they read; matching folds case, accents and
disguises (:func:`bots.moderation.matchers.fold`). Injection phrases are regexes over folded
text: lower case, no accents, ß as ss; Chinese and Japanese entries match inside text with
no spaces (a katakana word only as a whole katakana word: バカ is not inside バカンス).
Kept to words with no innocent reading; add your community's terms per persona.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGE_LISTS", "LanguageLists", "lists_for"]


@dataclass(frozen=True, slots=True)
class LanguageLists:
    """The built-in lists of one language."""

    blocked: tuple[str, ...] = ()  # like BlocklistSettings.words ("word*" for longer words)
    insults: tuple[str, ...] = ()  # like OutputSettings.insults
    injection: tuple[str, ...] = ()  # regexes over folded text, case-insensitive


_AP = "['’]"  # an apostrophe, typed or typographic

LANGUAGE_LISTS: dict[str, LanguageLists] = {
    "de": LanguageLists(
        blocked=(
            "scheiß*", "scheiss*", "fick*", "*ficker*", "gefickt", "hurensohn*", "arschloch*",
            "arschlöcher", "wichser*", "fotze*", "hure", "huren", "nutte*", "schlampe*",
            "missgeburt*", "spast", "spasti*", "porno*", "bring dich um", "bring dich doch um",
            "häng dich auf",
        ),
        insults=(
            "blödmann*", "vollidiot*", "depp", "deppen", "trottel*", "dummkopf*", "versager*",
            "halt die klappe", "halt's maul", "halts maul", "du bist dumm", "ihr seid dumm",
            "ich hasse dich", "ich hasse euch", "hässlich*", "erbärmlich*", "wertlos*",
            "nichtsnutz*",
        ),
        injection=(
            r"\b(?:ignorier\w*|vergiss|vergesst|vergessen|missacht\w*|ubergeh\w*|umgeh\w*)\b"
            r".{0,40}\b(?:anweisung\w*|instruktion\w*|regeln|vorgaben|richtlinien|befehle|"
            r"programmierung|filter|prompts?)\b",
            r"\b(?:deine|eure|alle|die)\s+(?:anweisungen|regeln|vorgaben|befehle)\s+"
            r"(?:ignorieren|vergessen|missachten)\b",
            r"\b(?:system|entwickler|versteckte\w*|ursprungliche\w*|geheime\w*)\s*-?\s*"
            r"(?:prompt|nachricht|anweisung\w*)",
            r"\b(?:du\s+bist\s+(?:jetzt|ab\s+jetzt|nun|ab\s+sofort)|ab\s+(?:jetzt|sofort)\s+"
            r"(?:bist|antwortest|sagst|sprichst|spielst)\s+du|tu\s+so,?\s+als\s+(?:ob|warst|"
            r"waerst)|gib\s+dich\s+als|spiel\s+die\s+rolle)\b",
            r"\b(?:sprich|sag)\s+(?:mir\s+)?nach\b|\bwiederhole?\s+(?:genau|wortlich|"
            r"folgendes|das\s+hier|nach\s+mir)\b|\bsag\s+(?:genau|wortlich|folgendes)\b",
            r"\b(?:neue|aktualisierte|echte)\s+(?:anweisung\w*|befehle|regeln)\b",
        ),
    ),
    "fr": LanguageLists(
        blocked=(
            "putain*", "merde*", "emmerd*", "connard*", "connasse*", "salope*", "salaud*",
            "encul*", "pute", "putes", "fils de pute", "fdp", "nique*", "ntm", "niquer",
            "pétasse*", "porno*", "branl*", "tue-toi", "suicide-toi", "va te pendre",
        ),
        insults=(
            "imbécile*", "crétin*", "débile*", "abruti*", "bouffon*", "tocard*", "minable*",
            "pathétique*", "moche*", "ta gueule", "ferme-la", "ferme la", "tais-toi",
            "je te déteste", "je vous déteste", "je vous hais", "je te hais", "bon à rien",
            "nullard*",
        ),
        injection=(
            r"\b(?:ignore[rsz]?|oublie[rsz]?|contourne[rsz]?|neglige[rsz]?|outrepasse[rsz]?)\b"
            r".{0,40}\b(?:instructions?|consignes?|regles?|directives?|programmation|filtres?|"
            r"prompts?)\b",
            r"\b(?:prompt|message|instructions?|consignes?)\s+(?:du\s+|de\s+)?(?:systeme|"
            r"initia(?:l|le|les|ux)|cache(?:e|es|s)?|d" + _AP + r"origine|secret(?:e|es|s)?)\b",
            r"\b(?:tu\s+es\s+(?:maintenant|desormais)|a\s+partir\s+de\s+maintenant,?\s+"
            r"(?:tu|reponds|sois|agis|parle)|desormais,?\s+(?:tu|reponds|sois)|fais\s+semblant"
            r"\s+d" + _AP + r"etre|fais\s+comme\s+si|joue\s+le\s+role)\b",
            r"\b(?:repete[sz]?\s+(?:apres\s+moi|exactement|mot\s+pour\s+mot|ceci|ce\s+qui\s+"
            r"suit)|dis\s+(?:exactement|mot\s+pour\s+mot|ce\s+qui\s+suit))\b",
            r"\b(?:nouvelles?|vraies?)\s+(?:instructions?|consignes?|regles?)\b",
        ),
    ),
    "es": LanguageLists(
        blocked=(
            "mierda*", "puta", "putas", "puto", "putos", "hijo de puta", "hijueputa*", "joder",
            "jodido*", "jódete", "coño", "cabrón*", "cabrona*", "pendejo*", "pendeja*",
            "gilipollas", "chingar*", "chingada*", "chingue*", "culero*", "maricón*", "marica",
            "porno*", "mátate", "suicídate",
        ),
        insults=(
            "idiota*", "estúpido*", "estúpida*", "imbécil*", "tonto", "tonta", "tontos",
            "tontas", "cállate", "callaos", "te odio", "os odio", "los odio", "inútil*",
            "patético*", "patética*", "feo", "fea", "fracasado*", "fracasada*", "asqueroso*",
            "asquerosa*", "perdedor*",
        ),
        injection=(
            r"\b(?:ignora[rd]?|ignore[ns]?|olvida[rd]?|olvide[ns]?|omite|omitir|salta(?:te)?|"
            r"evita)\b.{0,40}\b(?:instrucciones|instruccion|reglas|normas|directrices|"
            r"indicaciones|programacion|filtros?|prompts?)\b",
            r"\b(?:prompt|mensaje|instrucciones)\s+(?:del?\s+)?(?:sistema|inicial(?:es)?|"
            r"ocult[oa]s?|original(?:es)?|secret[oa]s?)\b",
            r"\b(?:ahora\s+eres|a\s+partir\s+de\s+ahora,?\s+(?:eres|seras|responde|actua|se|"
            r"hablas)|desde\s+ahora,?\s+(?:eres|responde)|finge\s+(?:ser|que)|haz\s+como\s+si|"
            r"actua\s+como|juega\s+el\s+papel)\b",
            r"\b(?:repite\s+(?:despues\s+de\s+mi|conmigo|exactamente|textualmente|esto|lo\s+"
            r"siguiente)|di\s+(?:exactamente|textualmente|lo\s+siguiente))\b",
            r"\b(?:nuevas?|verdaderas?)\s+(?:instrucciones|reglas|ordenes)\b",
        ),
    ),
    "it": LanguageLists(
        blocked=(
            "cazzo*", "cazzi", "vaffanculo", "fanculo", "stronzo*", "stronza*", "puttana*",
            "troia*", "merda*", "coglion*", "porco dio", "minchia", "porno*", "ammazzati",
            "suicidati",
        ),
        insults=(
            "idiota*", "stupido*", "stupida*", "scemo*", "scema*", "cretino*", "cretina*",
            "imbecille*", "deficiente*", "stai zitto", "stai zitta", "zitto", "ti odio",
            "vi odio", "patetico*", "brutto", "brutta",
        ),
        injection=(
            r"\b(?:ignora|dimentica|tralascia|aggira)\w*\b.{0,40}\b(?:istruzion[ie]|regole|"
            r"direttive|prompt|filtri|programmazione)\b",
            r"\b(?:prompt|messaggio|istruzioni)\s+(?:di\s+|del\s+)?(?:sistema|iniziali?|"
            r"nascost[oeia]|originali?|segret[oeia])\b",
            r"\b(?:ora\s+sei|d" + _AP + r"ora\s+in\s+poi|da\s+ora\s+in\s+poi|fingi\s+di\s+"
            r"essere|fai\s+finta\s+di|comportati\s+come)\b",
            r"\bripeti\s+(?:dopo\s+di\s+me|esattamente|quanto\s+segue|questo)\b",
            r"\bnuove\s+(?:istruzioni|regole)\b",
        ),
    ),
    "pt": LanguageLists(
        blocked=(
            "porra", "caralho*", "merda*", "puta", "putas", "foda*", "foder*", "fodase",
            "filho da puta", "buceta*", "arrombado*", "viado*", "porno*", "se mata",
        ),
        insults=(
            "idiota*", "estúpido*", "estúpida*", "imbecil*", "otário*", "babaca*",
            "cala a boca", "cala boca", "te odeio", "odeio vocês", "inútil*", "patético*",
            "fracassado*", "feio", "feia",
        ),
        injection=(
            r"\b(?:ignor[ea]\w*|esquec[ea]\w*|desconsider[ea]\w*)\b.{0,40}\b(?:instrucoes|"
            r"instrucao|regras|diretrizes|programacao|filtros?|prompts?)\b",
            r"\b(?:prompt|mensagem|instrucoes)\s+(?:do\s+|de\s+)?(?:sistema|iniciais?|"
            r"ocult[oa]s?|originais?|secret[oa]s?)\b",
            r"\b(?:agora\s+voce\s+e|a\s+partir\s+de\s+agora,?\s+(?:voce|responda|seja|aja)|"
            r"finja\s+(?:ser|que)|aja\s+como)\b",
            r"\brepita\s+(?:depois\s+de\s+mim|comigo|exatamente|isto|o\s+seguinte)\b",
            r"\bnovas\s+(?:instrucoes|regras)\b",
        ),
    ),
    "nl": LanguageLists(
        blocked=(
            "kut", "kutte*", "klootzak*", "godverdomme", "hoer", "hoeren", "neuk*", "flikker*",
            "mongool*", "porno*",
        ),
        insults=(
            "idioot*", "stommerd*", "sukkel*", "debiel*", "eikel*", "hou je bek",
            "hou je mond", "ik haat je", "ik haat jullie", "lelijk*", "zielig*",
        ),
        injection=(
            r"\b(?:negeer|vergeet|omzeil)\w*\b.{0,40}\b(?:instructies?|regels|richtlijnen|"
            r"prompts?|filters?|programmering)\b",
            r"\b(?:systeem|verborgen|oorspronkelijke|geheime)\s*(?:prompt|bericht|"
            r"instructies?)\b",
            r"\b(?:je\s+bent\s+nu|vanaf\s+nu,?\s+(?:ben|antwoord|reageer|doe)|doe\s+alsof|"
            r"speel\s+de\s+rol)\b",
            r"\bherhaal\s+(?:na\s+mij|precies|letterlijk|het\s+volgende|dit)\b",
            r"\bnieuwe\s+(?:instructies|regels)\b",
        ),
    ),
    "ja": LanguageLists(
        blocked=("死ね", "氏ね", "殺すぞ", "自殺しろ", "ちんこ", "まんこ", "ポルノ"),
        insults=(
            "バカ", "ばか", "馬鹿", "アホ", "あほ", "阿呆", "クズ", "ブス", "キモい", "きもい",
            "ウザい", "うざい", "黙れ", "消えろ", "役立たず", "大嫌いだ",
        ),
        injection=(
            r"(?:指示|命令|ルール|規則|設定|プロンプト|制限)(?:を|は)?(?:すべて|全部|全て)?"
            r"(?:無視|忘れ)",
            r"(?:システム|隠し|最初の|元の)\s*(?:プロンプト|メッセージ|指示)",
            r"(?:今から|これから|今後)、?(?:あなたは|君は|お前は)|ふりをして|になりきって|"
            r"として振る舞",
            r"(?:後に|あとに)(?:続けて|ついて)|(?:そのまま|正確に)(?:繰り返|言って)",
            r"新しい(?:指示|命令|ルール)",
        ),
    ),
    "zh": LanguageLists(
        blocked=("操你妈", "他妈的", "傻逼", "傻屄", "草泥马", "去死吧", "自杀吧"),
        insults=("白痴", "笨蛋", "傻瓜", "蠢货", "闭嘴", "废物", "丑八怪", "我恨你"),
        injection=(
            r"(?:忽略|无视|忘记|忘掉|無視|忽視)(?:你的|所有|之前的?|以上的?|上面的?|全部)*"
            r"(?:指令|指示|规则|規則|设定|提示词?)",
            r"系统(?:提示词?|消息|指令)|系統(?:提示|訊息)",
            r"(?:从现在开始|從現在開始|现在起)，?你(?:是|就是)|假装(?:你是|是)|扮演",
            r"(?:跟我|照着我)(?:说|念|重复)|(?:一字不差|原封不动)地?(?:重复|说)",
            r"新的?(?:指令|指示|规则)",
        ),
    ),
}


def lists_for(languages: tuple[str, ...]) -> LanguageLists:
    """The built-in lists of ``languages`` (base codes) joined; English is not among them
    (its lists are the settings' defaults)."""
    found = [LANGUAGE_LISTS[lang] for lang in dict.fromkeys(languages) if lang in LANGUAGE_LISTS]
    return LanguageLists(
        blocked=tuple(w for lists in found for w in lists.blocked),
        insults=tuple(w for lists in found for w in lists.insults),
        injection=tuple(p for lists in found for p in lists.injection),
    )
