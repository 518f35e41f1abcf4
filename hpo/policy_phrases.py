"""Recognising "turn AutoML off" in a free-text train request, as an intent rather than a keyword.

A request turns AutoML off only when an off-intent (a negating verb, "no", "without", "plain training"...)
applies to AutoML *itself*. Two kinds of target are told apart:

- unambiguous names of AutoML: "AutoML", "HPO", "hyperparameter search/tuning/optimisation", "sweep",
  "autotuning". "no HPO", "skip the sweep", "AutoML: off" are off-intents wherever they appear;
- generic words that name AutoML only when they stand alone: "tuning", "tune", "search", "optimisation".
  "skip tuning", "no tuning this time", "don't tune" are off-intents, but "train without tuning the
  backbone", "skip tuning the learning rate" or "no tuning of the decoder" only talk about tuning something
  else: the word has an object, so AutoML stays on (and the request can still say what not to tune).

A negated off-verb ("don't disable AutoML", "do not turn off HPO") is not an off-intent. The request is read
clause by clause (split at . , ; ! ? and "but"), so "use AutoML, but without tuning the backbone" does not
combine the halves of two clauses into "without ... AutoML".
"""

from __future__ import annotations

import re

# Unambiguous names of AutoML itself.
_STRONG = (r"(?:auto[\s_-]?ml|hpo|auto[\s-]?tun(?:e|ing|er)|hyper[\s_-]?param(?:eter)?s?(?:[\s_-]+"
           r"(?:search|tuning|optimi[sz]ation|optimi[sz]er|sweeps?|sampling))?|h[\s-]?params?[\s_-]+search|"
           r"(?:parameter|param)[\s_-]+(?:search|sweeps?)|sweeps?|(?:the\s+)?tuner)")
# Words that name AutoML only when nothing follows them that they could act upon.
_WEAK = r"(?:tuning|tune|search(?:ing)?|optimi[sz]ation|optimi[sz]ing)"
# What may follow a weak word without giving it an object.
_FILLER = (r"(?:this\s+time|for\s+now|for\s+this\s+(?:one|run|job)|please|pls|today|at\s+all|entirely|"
           r"completely|altogether|here|now|anymore|step|phase|stage|part|whatsoever|thanks|thank\s+you)")
_ALONE = rf"(?=\s*(?:$|{_FILLER}\b|\(|-|–|—))"
_THE = r"(?:(?:the|any|an?|all|some|my|your)\s+)?"
_TARGET = rf"(?:{_THE}{_STRONG}\b|{_THE}{_WEAK}\b{_ALONE}|{_THE}(?:hyper)?parameter\s+{_WEAK}\b{_ALONE})"

_OFF_VERB = (r"(?:disable|disabling|deactivate|deactivating|skip|skipping|bypass|bypassing|avoid|avoiding|drop|"
             r"dropping|forgo|forego|omit|omitting|ditch|leave\s+out|opt\s+out\s+of|turn(?:ing)?\s+off|"
             r"switch(?:ing)?\s+off|shut(?:ting)?\s+off|kill|cancel)")
_NEGATION = r"(?:don'?t|do\s+not|doesn'?t|never|not|no\s+need\s+to|shouldn'?t|please\s+don'?t)"

_PATTERNS = (
    # disable AutoML / skip tuning / turn off the sweep
    rf"\b{_OFF_VERB}\s+{_TARGET}",
    # turn AutoML off / switch the HPO off
    rf"\b(?:turn|switch|shut)(?:ing)?\s+{_THE}{_STRONG}\s+off\b",
    # AutoML off / HPO: disabled / automl=false / AutoML is disabled
    rf"\b{_STRONG}\s*(?:=|:|is|should\s+be|set\s+to)?\s*(?:(?:turned|switched|shut)\s+off|off|disabled|false)\b",
    # no HPO / without AutoML / w/o tuning / no need for a sweep
    rf"\b(?:no|without|w/o|sans|no\s+need\s+for|not\s+using|not\s+with)\s+(?:any\s+|more\s+)?{_TARGET}",
    # don't use AutoML / do not run a sweep / don't tune / never do HPO
    rf"\b{_NEGATION}\s+(?:want|need|use|run|do|start|launch|bother\s+with|perform)\s+{_TARGET}",
    rf"\b{_NEGATION}\s+(?:tune|search|optimi[sz]e){_ALONE}",
    rf"\b{_NEGATION}\s+(?:tune|search|optimi[sz]e)\s+anything\b",
    # plain training / a single training run / one-off training / train once
    r"\b(?:plain|vanilla|single|one[\s-]off)\s+(?:training|train)(?:\s+run|\s+job)?\b",
    r"\b(?:just|only)?\s*one\s+(?:plain\s+|single\s+)?training\s+(?:run|job)\b",
    r"\b(?:just|only|simply)\s+(?:a\s+|one\s+)?(?:plain|normal|regular|standard|single|basic)\s+(?:training|train)\b",
    r"\btrain(?:\s+(?:it|the\s+model))?\s+(?:just\s+)?once\b",
)
OFF_INTENTS = tuple(re.compile(pattern, re.IGNORECASE) for pattern in _PATTERNS)
# "don't disable AutoML" keeps it on: an off-intent right after a negation does not count.
_NEGATED = re.compile(r"\b(?:don'?t|do\s+not|never|not|shouldn'?t|no\s+need\s+to|without)\s*$", re.IGNORECASE)
_CLAUSES = re.compile(r"[.;!?,\n]+|\bbut\b|\bhowever\b", re.IGNORECASE)


def _normalised(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text).strip()


def find_off_intent(request: str | None) -> str | None:
    """The phrase of `request` that turns AutoML off, or None when it says nothing of the kind."""
    if not request:
        return None
    for clause in _CLAUSES.split(_normalised(request)):
        clause = clause.strip()
        for pattern in OFF_INTENTS:
            for match in pattern.finditer(clause):
                if not _NEGATED.search(clause[: match.start()]):
                    return match.group(0).strip()
    return None
