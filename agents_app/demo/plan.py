"""The demo's plan: every agent it will run, with its model, source, conversation and fate.

All randomness comes from one seeded ``random.Random``, so the same seed, days and volume always
give the same agents, messages and counts.
"""

import datetime as dt
import random
from dataclasses import dataclass

DEFAULT_SEED = 2026
DEFAULT_DAYS = 60
DEFAULT_CUTOVER_DAYS_AGO = 21
DEFAULT_SESSIONS_PER_DAY = 40
DEFAULT_ADMIN_USERNAME = "demo-admin"

# (model name, weight in the traffic, share of its agents that never speak)
MODELS = (
    ("anthropic/claude-opus-4.6", 5, 0.18),
    ("openai/gpt-5", 5, 0.27),
    ("google/gemini-3-pro", 3, 0.34),
    ("deepseek/deepseek-v3.2", 3, 0.41),
    ("openrouter/qwen/qwen3-coder-480b-a35b-instruct:free", 2, 0.46),
    ("meta-llama/llama-4-maverick", 2, 0.57),
)
SOURCES = (("cli", 35), ("telegram", 20), ("discord", 14), ("cron", 12), ("api_server", 12), ("slack", 7))
SILENT_ENDINGS = (("timeout", 5, 300), ("api_error", 3, 8), ("never_dispatched", 2, 1))  # reason, weight, seconds
SUMMARY = "[Summary of the earlier conversation] The user asked for help; the main points are settled."
SYSTEM_PROMPT = "You are Hermes, a helpful assistant with tools. Be concise; ask before destructive actions."
PROMPTS = {
    "cron": [
        "Nightly job: check disk usage on all hosts and report anything above 80%.",
        "Daily digest: summarise new issues labelled bug since yesterday.",
        "Weekly: list dependencies with security advisories.",
    ],
    None: [
        "Summarise the open pull requests and flag anything blocking the release.",
        "Why does pytest -x fail on test_services after the rebase?",
        "Draft a short, polite reply to the landlord about the heating repair.",
        "What's on my calendar tomorrow morning?",
        "Translate into German: the meeting moves to Thursday at 10.",
        "Find three vegetarian recipes with chickpeas that take under 30 minutes.",
        "Compare these two SQL query plans and tell me which index is missing.",
        "Write a haiku about database migrations.",
        "Refactor this function to stream rows instead of loading them all.",
        "Remind me what we decided about the Postgres upgrade last week.",
    ],
}
TOOLS = (
    ("terminal", {"command": "df -h"}, "Filesystem  Size  Used Avail Use%\n/dev/sda1   100G   61G   39G  61%"),
    ("web_search", {"query": "chickpea recipes quick"}, "1. Chana masala (25 min)\n2. Chickpea salad (10 min)"),
    ("read_file", {"path": "tests/test_services.py"}, "def test_first_call_creates_then_appends(db): ..."),
    ("calendar", {"day": "tomorrow"}, "09:30 stand-up; 11:00 dentist"),
)
ANSWERS = (
    "Done. Here is the short version, with the details below.",
    "I found the cause: the fixture creates the row twice. Fix attached.",
    "Here are three options; the second is the quickest.",
    "All hosts are below 80% except db-2 (86%). I suggest pruning old WAL files.",
    "Sure. Anything else you want me to look at?",
)


@dataclass
class Planned:
    session_id: str
    model: str
    source: str
    user_id: str | None
    started_at: dt.datetime
    silent: tuple[str, int] | None  # (end reason, seconds) for an agent that never speaks
    turns: list[tuple[list[dict], dict]]  # (messages, usage) per turn
    compress_before: int | None  # turn index at which the conversation is compressed
    child_id: str
    end_reason: str
    crashed: bool  # never ended: ended_at stays empty
    stale_counter: bool  # legacy only: message_count doubled by the old double-write bug


def plan(rng: random.Random, *, now: dt.datetime, days: int, sessions_per_day: int) -> list[Planned]:
    """Every agent of the demo, oldest first; all randomness comes from ``rng``."""
    names, weights, shares = zip(*MODELS, strict=True)
    sources, source_weights = zip(*SOURCES, strict=True)
    planned = []
    for day in range(days - 1, -1, -1):
        growth = 0.8 + 0.4 * (days - day) / days  # usage grows over the period
        for _ in range(round(sessions_per_day * growth * rng.uniform(0.75, 1.25))):
            started = now - dt.timedelta(days=day + rng.random(), hours=3)  # conversations end before now
            index = rng.choices(range(len(names)), weights)[0]
            source = rng.choices(sources, source_weights)[0]
            silent = None
            if rng.random() < shares[index]:
                reason, _, seconds = rng.choices(SILENT_ENDINGS, [w for _, w, _ in SILENT_ENDINGS])[0]
                silent = (reason, seconds)
            turns = _conversation(rng, source, started)
            planned.append(
                Planned(
                    session_id=_session_id(rng, started),
                    model=names[index],
                    source=source,
                    user_id=None if source == "cron" else str(rng.randint(10_000, 99_999)),
                    started_at=started,
                    silent=silent,
                    turns=turns,
                    compress_before=rng.randint(2, len(turns) - 1) if len(turns) >= 4 and rng.random() < 0.3 else None,
                    child_id=_session_id(rng, started),
                    end_reason=rng.choices(["completed", "user_exit", "error"], [80, 15, 5])[0],
                    crashed=rng.random() < 0.08,
                    stale_counter=rng.random() < 0.03,
                )
            )
    planned.sort(key=lambda p: p.started_at)
    return planned


def _session_id(rng: random.Random, when: dt.datetime) -> str:
    return f"{when:%Y%m%d_%H%M%S}_{rng.getrandbits(64):016x}"


def _conversation(rng: random.Random, source: str, start: dt.datetime) -> list[tuple[list[dict], dict]]:
    count = 1 if source == "cron" else rng.choices([1, 2, 3, 4, 5, 6, 8], [30, 22, 16, 12, 9, 7, 4])[0]
    at = start + dt.timedelta(seconds=rng.uniform(1, 20))
    turns = []
    for number in range(count):
        prompts = PROMPTS["cron"] if source == "cron" else PROMPTS[None]
        messages = [{"role": "user", "content": rng.choice(prompts), "timestamp": at}]
        at += dt.timedelta(seconds=rng.uniform(2, 15))
        if rng.random() < 0.4:
            name, arguments, output = rng.choice(TOOLS)
            call_id = f"call_{rng.getrandbits(48):012x}"
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            messages.append({"role": "assistant", "tool_calls": [call], "finish_reason": "tool_calls", "timestamp": at})
            at += dt.timedelta(seconds=rng.uniform(1, 30))
            messages.append(
                {"role": "tool", "content": output, "tool_call_id": call_id, "tool_name": name, "timestamp": at}
            )
            at += dt.timedelta(seconds=rng.uniform(2, 20))
        answer = {"role": "assistant", "content": rng.choice(ANSWERS), "finish_reason": "stop", "timestamp": at}
        answer["token_count"] = rng.randint(40, 900)
        if rng.random() < 0.3:
            answer["reasoning"] = "The user wants a short answer; check the facts first, then reply."
        messages.append(answer)
        input_tokens = 1_500 + number * 2_500 + rng.randint(0, 2_000)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": answer["token_count"] + 30,
            "cache_read_tokens": int(input_tokens * rng.uniform(0, 0.7)),
            "api_call_count": sum(m["role"] == "assistant" for m in messages),
        }
        turns.append((messages, usage))
        at += dt.timedelta(seconds=rng.uniform(20, 600))  # the user reads, thinks, types
    return turns
