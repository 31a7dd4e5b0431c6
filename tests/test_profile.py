"""A keyboard that learns its user: personal words, adaptation, blocklist, incognito, the profile file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nextword import Predictor
from nextword.profile import DEFAULT_CAP_BYTES, Profile, ProfileError, ProfileMismatchError
from nextword.tokenizer import Tokenizer

from conftest import run_cli


@pytest.fixture(scope="module")
def predictor(exported):
    _, models, _ = exported
    return Predictor.load(models / "model.int8.tflite")


def send(session, text: str) -> None:
    session.feed(text)
    session.commit()


def words(suggestions) -> list[str]:
    return [s.word for s in suggestions]


def test_a_personal_word_is_completed_after_the_threshold_and_not_before(predictor):
    profile = Profile()
    session = predictor.session(profile)
    assert profile.threshold == 2
    send(session, "i like zorblax today")
    session.feed("i like")
    assert "zorblax" not in words(session.suggest(5, prefix="zor"))  # sent once: not yet a personal word
    session.reset()
    send(session, "we see zorblax today")
    session.feed("i like")
    assert words(session.suggest(3, prefix="zor"))[0] == "zorblax"
    assert words(session.suggest(3, prefix="ZOR"))[0] == "zorblax"  # prefixes are normalised as words are


def test_adaptation_learns_what_this_user_says_after_a_context(predictor):
    profile = Profile()
    session = predictor.session(profile)
    session.feed("thank you")
    before = session.suggest(3)
    assert "zorblax" not in words(before)
    for _ in range(6):
        send(session, "thank you zorblax")
    session.feed("thank you")
    assert words(session.suggest(3))[0] == "zorblax"
    # The weight was learned from how well the user part predicted: contexts seen often weigh more.
    weights = {bucket: w["user"] + w["recent"] for bucket, w in profile.summary()["mixing_weights"].items()}
    assert max(weights.values()) > 0.5 and weights["1"] < max(weights.values())
    # A distribution: the mixture (model ids, then the personal words) sums to 1.
    mixed, _ = session.adapted()
    assert mixed.sum() == pytest.approx(1.0, abs=1e-4)


def test_the_model_alone_is_unchanged_without_a_profile_and_with_an_empty_one(predictor):
    plain, empty = predictor.session(), predictor.session(Profile())
    for text in ("", "i like ", "we want some t"):
        context, prefix = predictor.split_partial(text)
        plain.reset(), empty.reset()
        plain.feed(context), empty.feed(context)
        assert words(plain.suggest(3, prefix)) == words(empty.suggest(3, prefix)) == \
            words(predictor.suggest(text, 3))


@pytest.mark.parametrize("how", ["profile", "session", "learned-before"])
def test_a_blocked_word_is_never_suggested_completed_or_learned(predictor, how):
    profile = Profile()
    if how == "learned-before":  # learned as a personal word and as the user's habit, then blocked
        session = predictor.session(profile)
        for _ in range(4):
            send(session, "i like coffee zorblax")
        profile.block("Zorblax")
        profile.block("coffee")
    elif how == "profile":
        profile.block("coffee")
        profile.block("zorblax")
        session = predictor.session(profile)
    else:
        session = predictor.session(profile, block=["coffee", "ZORBLAX"])
    for _ in range(4):  # sending them again teaches nothing
        send(session, "i like coffee zorblax")
    assert not any("zorblax" in gram or "coffee" in gram for gram in profile.grams)
    for context in ("", "i like", "i like coffee", "we want", "see you"):
        session.reset()
        session.feed(context)
        shown = words(session.suggest(50)) + words(session.suggest(50, prefix="c")) + \
            words(session.suggest(50, prefix="zor")) + words(session.suggest(50, prefix="coffe"))
        assert "coffee" not in shown and "zorblax" not in shown
    if how == "session":  # a --block file is not written into the profile
        assert profile.blocked == set()
    else:
        assert {"coffee", "zorblax"} <= profile.blocked
        assert "coffee" in Profile.load(profile.save(predictor.model.path.parent / f"{how}.profile")).blocked


def test_a_session_ranks_exactly_what_the_full_mix_ranks(predictor):
    """The strip ranks candidates without mixing the whole vocabulary (``Profile.top``): the same words in the
    same order with the same probabilities as ranking the full mixed distribution, through learning,
    personal words, blocked words, prefixes and strips of any width."""
    rng = np.random.default_rng(1)
    vocabulary = [w for w in predictor.tokenizer.vocab if not w.startswith("<")]
    profile = Profile()
    session = predictor.session(profile)
    names = ["zorblax", "kestrel", "quillon", "marrow"]
    checked = 0
    for message in range(120):
        text = list(rng.choice(vocabulary, int(rng.integers(2, 9)))) + list(rng.choice(names, 2))
        for position in range(len(text)):
            if position % 3 == 0:
                for k in (1, 3, 12):
                    for prefix in ("", text[position][:1], text[position][:2]):
                        got = session.suggest(k, prefix)
                        mixed, index = session.adapted()
                        ids = index.top(mixed, k, predictor.normalise_prefix(prefix))
                        assert [(s.word, s.prob) for s in got] == [(profile.word(i), float(mixed[i])) for i in ids]
                        checked += 1
            session.feed(text[position])
        session.commit()
        if message in (40, 80):
            profile.block(text[0])
    assert checked > 2500 and sum(count >= profile.threshold for count in profile.sent.values()) >= 3


def test_a_blocklist_without_a_profile_learns_nothing(predictor):
    session = predictor.session(block=["coffee"])
    send(session, "i like coffee today")
    session.feed("we want")
    assert "coffee" not in words(session.suggest(20)) and session.profile.grams == {}


def test_incognito_learns_and_stores_nothing(predictor, tmp_path):
    path = tmp_path / "me.profile"
    profile = Profile.open(path, predictor.tokenizer)
    session = predictor.session(profile, incognito=True)
    for _ in range(3):
        send(session, "i like zorblax today")
    assert profile.grams == {} and profile.messages == 0 and profile.sent == {}
    assert not path.exists()


def test_profile_round_trip(predictor, tmp_path):
    profile = Profile()
    session = predictor.session(profile)
    for text in ("i like zorblax today", "we see zorblax", "thank you so much", "i like the train"):
        send(session, text)
    profile.block("news")
    path = profile.save(tmp_path / "me.profile")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = Profile.load(path)
    assert loaded.to_dict() == profile.to_dict()
    again = predictor.session(loaded)
    session.reset()
    for context, prefix in (("i like", ""), ("we see", "z"), ("thank you", "")):
        session.reset(), again.reset()
        session.feed(context), again.feed(context)
        expected, got = session.suggest(4, prefix), again.suggest(4, prefix)  # counts are saved to 6 decimals
        assert words(got) == words(expected)
        np.testing.assert_allclose([s.prob for s in got], [s.prob for s in expected], rtol=1e-5)


def test_the_cap_prunes_the_oldest_and_rarest_first(predictor):
    rng = np.random.default_rng(0)
    vocabulary = [w for w in predictor.tokenizer.vocab if not w.startswith("<")]
    profile = Profile(cap_bytes=6_000)
    session = predictor.session(profile)
    for message in range(400):
        rare = " ".join(f"w{message}x{i}" for i in range(3))  # never repeated: the first to go
        send(session, f"{rare} {' '.join(rng.choice(vocabulary, 3))} my habit phrase")
    size = len(profile.to_bytes())
    assert size <= 6_000
    assert ("my", "habit", "phrase") in profile.grams  # sent in every message: kept
    assert not any(gram[0].startswith("w1x") for gram in profile.grams)  # old and sent once: pruned
    assert DEFAULT_CAP_BYTES == 1_000_000 and Profile().cap_bytes == DEFAULT_CAP_BYTES


def test_memory_stays_bounded_over_many_messages(predictor):
    profile = Profile(cap_bytes=20_000)
    session = predictor.session(profile)
    sizes = []
    for message in range(3_000):
        send(session, f"new{message} words{message % 97} every time")
        if message % 500 == 499:
            sizes.append(len(profile.grams))
    assert max(sizes) <= 2 * min(sizes)  # pruned to the cap, not growing with the messages


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited", "not-a-profile", "empty", "header-only"])
def test_a_damaged_profile_is_set_aside_and_the_keyboard_starts_without_it(predictor, tmp_path, damage):
    path = tmp_path / "me.profile"
    profile = Profile.open(path, predictor.tokenizer)
    send(predictor.session(profile), "i like zorblax today")
    profile.save()
    data = path.read_bytes()
    damaged = {"garbage": b"\x00\xff" * 50, "truncated": data[: len(data) // 2],
               "edited": data.replace(b'"messages":1', b'"messages":7'),
               "header-only": data.split(b"\n")[0], "not-a-profile": b'{"a": 1}',
               "empty": b""}[damage]
    assert damaged != data
    path.write_bytes(damaged)
    lines = []
    fresh = Profile.open(path, predictor.tokenizer, warn=lines.append)
    assert fresh.grams == {} and len(lines) == 1 and "damaged" in lines[0] and "set aside" in lines[0]
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("me.profile.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for the user, not deleted
    with pytest.raises(ProfileError, match="damaged"):
        Profile.load(aside[0])


def test_a_profile_of_another_model_is_refused_in_one_line(predictor, tmp_path):
    path = tmp_path / "me.profile"
    profile = Profile.open(path, predictor.tokenizer)
    send(predictor.session(profile), "i like zorblax today")
    profile.save()
    other = Tokenizer.fit(["a completely different vocabulary"])
    with pytest.raises(ProfileMismatchError, match="another model's vocabulary") as err:
        Profile.open(path, other)
    assert "\n" not in str(err.value)
    assert path.exists()  # refused, not set aside: it is intact, only for another model


NO_NETWORK = r"""
import sys
def refuse(event, args):
    if event.startswith("socket.") or event in ("urllib.Request", "http.client.connect"):
        raise SystemExit(f"network: {event} {args!r}")
sys.addaudithook(refuse)
from pathlib import Path
from nextword import Predictor
from nextword.profile import Profile
predictor = Predictor.load(sys.argv[1])
profile = Profile.open(Path(sys.argv[2]), predictor.tokenizer)
session = predictor.session(profile)
for _ in range(3):
    session.feed("i like zorblax today"); session.commit()
session.feed("i like zor"); print(session.suggest(3, "zor")[0].word)
profile.save()
"""


def test_nothing_in_the_runtime_opens_a_network_connection(exported, tmp_path):
    _, models, _ = exported
    for name in ("model.int8.tflite", "model.onnx"):
        done = subprocess.run([sys.executable, "-c", NO_NETWORK, str(models / name), str(tmp_path / "p")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == "zorblax"


def test_profile_cli_show_clear_export_import(predictor, tmp_path):
    path = tmp_path / "me.profile"
    profile = Profile.open(path, predictor.tokenizer)
    session = predictor.session(profile)
    for _ in range(2):
        send(session, "i like zorblax today")
    profile.block("news")
    profile.save()
    shown = run_cli("profile", "show", str(path))
    assert shown.returncode == 0 and "zorblax" in shown.stdout and "news" in shown.stdout
    shown = json.loads(run_cli("profile", "show", str(path), "--json").stdout)
    assert shown["messages"] == 2 and shown["top_personal_words"] == ["zorblax"]
    backup = tmp_path / "backup.json"
    assert run_cli("profile", "export", str(path), "--out", str(backup)).returncode == 0
    assert run_cli("profile", "clear", str(path)).returncode == 0
    cleared = Profile.load(path)
    assert cleared.grams == {} and cleared.blocked == {"news"}  # the blocklist is a setting: it stays
    merged = run_cli("profile", "import", str(path), "--from", str(backup))
    assert merged.returncode == 0, merged.stderr
    assert Profile.load(path).summary()["top_personal_words"] == ["zorblax"]
    bad = run_cli("profile", "show", str(tmp_path / "missing.profile"))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_eval_adapt_reports_every_measure_with_and_without_adaptation(exported, tmp_path):
    _, models, _ = exported
    text = tmp_path / "user.txt"
    lines = ["see you at the kestrel tonight", "i like the train today", "meet me at the kestrel",
             "thank you so much", "the kestrel at seven then"] * 8
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_cli("eval", str(models / "model.int8.tflite"), "--text", str(text), "--adapt", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    usual = json.loads(run_cli("eval", str(models / "model.int8.tflite"), "--text", str(text), "--json").stdout)
    for key in ("perplexity", "top1", "top3", "top5", "suggest_top1", "suggest_top3", "ksr", "tokens",
                "suggest_tokens"):
        assert key in result and key in result["baseline"], key
    # Both runs score the same targets; words outside the vocabulary count as word targets in both.
    assert result["tokens"] == result["baseline"]["tokens"] == usual["tokens"]
    assert result["suggest_tokens"] == result["baseline"]["suggest_tokens"] > usual["suggest_tokens"]
    assert result["baseline"]["perplexity"] == pytest.approx(usual["perplexity"], rel=1e-4)
    assert result["unknown_word_share"] > 0.1 and result["personal_word_share"] > 0.05
    # A user who repeats themselves: adaptation gains a lot.
    assert result["ksr"] > result["baseline"]["ksr"] + 0.1
    assert result["suggest_top3"] > result["baseline"]["suggest_top3"] + 0.1
    assert result["perplexity"] < result["baseline"]["perplexity"]
    shown = run_cli("eval", str(models / "model.int8.tflite"), "--text", str(text), "--adapt")
    assert shown.returncode == 0 and "adapted to the user" in shown.stdout and "without adaptation" in shown.stdout


def _resigned(body: dict) -> bytes:
    import hashlib

    raw = json.dumps(body).encode()
    return json.dumps({"format": "nextword-profile", "version": 1, "sha256": hashlib.sha256(raw).hexdigest()}).encode() \
        + b"\n" + raw


CRAFTED = {
    "body not an object": lambda b: [1, 2],
    "missing field": lambda b: {k: v for k, v in b.items() if k != "grams"},
    "grams not an object": lambda b: {**b, "grams": "x"},
    "count a string": lambda b: {**b, "grams": {"": {"i": "7"}}},
    "count negative": lambda b: {**b, "grams": {"": {"i": -1}}},
    "count huge": lambda b: {**b, "grams": {"": {"i": 10**400}}},
    "count infinite": lambda b: {**b, "grams": {"": {"i": 1e400}}},
    "count past float32 arithmetic": lambda b: {**b, "grams": {"": {"i": 1e30}}},
    "a word with a space": lambda b: {**b, "grams": {"": {"two words": 1}}},
    "the message start as a word": lambda b: {**b, "grams": {"": {"\n": 1}}},
    "a bigram's word not among the unigrams": lambda b: {**b, "grams": {"": {"i": 2}, "i": {"like": 1}}},
    "context too long": lambda b: {**b, "grams": {"a b c d": {"i": 1}}},
    "empty word": lambda b: {**b, "grams": {"": {"": 1}}},
    "sent zero": lambda b: {**b, "sent": {"zorblax": 0}},
    "sent a float": lambda b: {**b, "sent": {"zorblax": 1.5}},
    "threshold zero": lambda b: {**b, "threshold": 0},
    "threshold bool": lambda b: {**b, "threshold": True},
    "mixer short": lambda b: {**b, "mixer": {"1": [1, 2]}},
    "mixer more responsibility than targets": lambda b: {**b, "mixer": {"1": [5, 5, 1]}},
    "mixer huge": lambda b: {**b, "mixer": {"1": [10**400, 0, 1]}},
    "recent too many": lambda b: {**b, "recent": [["a"]] * 51},
    "recent not words": lambda b: {**b, "recent": [[1, 2]]},
    "blocked not words": lambda b: {**b, "blocked": [None]},
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_profile_with_a_valid_checksum_is_refused_in_one_typed_line(predictor, tmp_path, case):
    from nextword.profile import ProfileDamagedError

    profile = Profile()
    send(predictor.session(profile), "i like zorblax today")
    body = json.loads(profile.to_bytes().split(b"\n", 1)[1])
    path = tmp_path / "crafted.profile"
    path.write_bytes(_resigned(CRAFTED[case](body)))
    with pytest.raises(ProfileDamagedError) as err:
        Profile.load(path)
    assert "\n" not in str(err.value)
    # The keyboard sets it aside and starts afresh, as with any damaged file.
    assert Profile.open(path, predictor.tokenizer, warn=lambda _: None).grams == {}


def test_keyboard_line_mode_blocks_words_and_learns_with_a_profile(exported, tmp_path):
    from conftest import user_env

    _, models, _ = exported
    model = str(models / "model.int8.tflite")
    predictor = Predictor.load(model)
    blocked = words(predictor.suggest("we want ", 3))[0]
    block = tmp_path / "block.txt"
    block.write_text(f"# words never to suggest\n{blocked.upper()}\n", encoding="utf-8")
    profile = tmp_path / "me.profile"
    lines = "we want \ni like zorblax today\ni like zorblax today\ni like zor\n"
    done = subprocess.run([sys.executable, "-m", "nextword", "keyboard", model, "--block", str(block),
                           "--profile", str(profile)], input=lines, capture_output=True, text=True, timeout=120,
                          env=user_env())
    assert done.returncode == 0, done.stderr
    strips = done.stdout.splitlines()[1::2]
    assert blocked not in strips[0]
    assert strips[3].startswith("  [1] zorblax")
    assert Profile.load(profile).messages == 4 and Profile.load(profile).blocked == set()
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00darn")
    for bad, said in [("no", "no such file"), ("binary", "not UTF-8 text"), (".", "is a directory")]:
        refused = subprocess.run([sys.executable, "-m", "nextword", "keyboard", model, "--block", str(tmp_path / bad)],
                                 input="", capture_output=True, text=True, timeout=60, env=user_env())
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert said in refused.stderr


def test_a_profile_that_cannot_be_saved_is_said_and_typing_goes_on(exported, tmp_path):
    from nextword.cli.keyboard import Keyboard

    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    profile = Profile.open(blocker / "me.profile", predictor.tokenizer)  # its folder cannot be made
    keyboard = Keyboard(predictor, 3, profile)
    for key in "i like zorblax today":
        keyboard.key(key)
    assert keyboard.key("\r") == "line"
    keyboard.send()
    assert "cannot write the profile" in keyboard.message and "\n" not in keyboard.message
    assert profile.messages == 1 and keyboard.text == ""  # learned in memory; the next message may save it
    keyboard.key("i")
    assert keyboard.strip().startswith("[1]")


def test_a_long_message_keeps_its_last_words_for_the_recent_part(predictor, tmp_path):
    """A commit reads every recent word: a pasted book, or a crafted file, must not slow every later one."""
    from nextword.profile import RECENT_WORDS

    profile = Profile()
    profile.bind(predictor.tokenizer)
    profile.learn(["i"] * (3 * RECENT_WORDS) + ["zorblax"], [])
    assert len(profile.recent[-1]) == RECENT_WORDS and profile.recent[-1][-1] == "zorblax"
    body = json.loads(profile.to_bytes().split(b"\n", 1)[1])
    body["recent"] = [["the"] * (5 * RECENT_WORDS)]
    path = tmp_path / "long.profile"
    path.write_bytes(_resigned(body))
    assert [len(message) for message in Profile.load(path).recent] == [RECENT_WORDS]
