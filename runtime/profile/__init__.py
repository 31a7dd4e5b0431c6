"""The personal profile: what a keyboard learns from its user, kept on the device (see ``profile.py``)."""

from nextword.profile.blocking import read_blocklist
from nextword.profile.profile import Profile
from nextword.profile.settings import DEFAULT_CAP_BYTES, ORDER, RECENT_WORDS
from nextword.profile.storage import ProfileDamagedError, ProfileError, ProfileMismatchError

__all__ = ["DEFAULT_CAP_BYTES", "ORDER", "RECENT_WORDS", "Profile", "ProfileDamagedError", "ProfileError",
           "ProfileMismatchError", "read_blocklist"]
