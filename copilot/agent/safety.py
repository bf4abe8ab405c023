"""Knowledge-base text, transcripts and CRM notes are data, never instructions.

Passages that read like instructions aimed at an AI assistant ("忽略之前的指令…") are not
offered as advice to reps and not given to the model as evidence.
"""

from __future__ import annotations

import re

_INJECTION = re.compile(
    r"(忽略|无视|忘记|不要理会)(掉)?(之前|以上|上述|前面|先前|所有|全部)?的?(所有|全部)?(指令|指示|提示词?|规则|设定|要求)"
    r"|(system\s*prompt|系统提示词)"
    r"|ignore\s+(all\s+)?(the\s+)?(previous|prior|above)\s+(instructions|prompts?)"
    r"|disregard\s+(all\s+)?(previous|prior|above)\s+instructions"
    r"|你现在是|you\s+are\s+now\s+",
    re.IGNORECASE,
)


def looks_like_injection(text: str) -> bool:
    return bool(_INJECTION.search(text))
