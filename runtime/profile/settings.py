"""The profile's numbers: file format, n-gram order, decay, caps and priors (each with why)."""

FORMAT = "nextword-profile"
VERSION = 1
ORDER = 3
#: Per committed message: a count halves in about 700 messages.
DECAY = 0.999
#: Times an unknown word must be sent before it is suggested (measured in docs/benchmarks.md).
PERSONAL_THRESHOLD = 2
DEFAULT_CAP_BYTES = 1_000_000
#: The weights of the user n-gram and of the recent words before the user's text says otherwise, and how
#: many targets that guess weighs.
PRIOR_USER, PRIOR_RECENT, PRIOR_TARGETS = 0.1, 0.05, 4.0
#: Messages the recent-words part reads, and the weight of each message relative to the one after it.
RECENT_MESSAGES, RECENT_DECAY = 50, 0.9
#: Words of a message the recent-words part keeps (its last ones): a commit reads them all, so a pasted
#: book, or a crafted file, cannot make every later message slow.
RECENT_WORDS = 1000
#: Marks the start of a message in the user n-gram's contexts (no token contains whitespace).
START = "\n"
MAX_FILE_BYTES = 16 * DEFAULT_CAP_BYTES
#: A saved n-gram count no profile reaches (a decayed count is at most 1 / (1 - DECAY) times a word's
#: occurrences per message) and that float32 vectors hold with room for the decay's scale (up to 1e20).
MAX_COUNT = 1e12
