"""The one resolver of model handles: local directories, tfhub.dev URLs, short handles.

Used for BigGAN modules (`hub_import`) and for the FID classifier (`classifier`). A URL
or short handle (`deepmind/biggan-128/2`, `tensorflow/tfgan/eval/inception/1`) goes
through TF-Hub's cache (`TFHUB_CACHE_DIR`), so a module unpacked at
`$TFHUB_CACHE_DIR/<sha1 of the URL>` is found without network. When a handle cannot be
fetched, the error says what to download and the exact path to unpack it to.
"""

import hashlib
import os
import re

import tensorflow as tf

from tf_cgan_transfer import errors

TFHUB_URL = "https://tfhub.dev/"
_URL = re.compile(r"^(https?|gs)://")
# owner/name[/more]/version, e.g. deepmind/biggan-128/2 or tensorflow/tfgan/eval/inception/1
_SHORT_HANDLE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)+/\d+$")


class HandleError(errors.UserError, ValueError):
    """A handle that names nothing usable; the message says what to download or pass."""


def is_handle(text):
    """True for a URL or a short TF-Hub handle (not a local directory)."""
    return bool(_URL.match(text) or _SHORT_HANDLE.match(text))


def url_of(handle):
    """The URL a handle stands for (`deepmind/biggan-128/2` -> `https://tfhub.dev/...`)."""
    return handle if "://" in handle else TFHUB_URL + handle


def cache_path(url):
    """Where TF-Hub's cache keeps the module of `url` (under `$TFHUB_CACHE_DIR`)."""
    root = os.environ.get("TFHUB_CACHE_DIR") or "$TFHUB_CACHE_DIR"
    return os.path.join(root, hashlib.sha1(url.encode("utf8")).hexdigest())


def download_help(url, flag):
    """How to get a module by hand on an offline machine, and where to put it."""
    note = (
        ""
        if os.environ.get("TFHUB_CACHE_DIR")
        else " (set TFHUB_CACHE_DIR to choose the cache root)"
    )
    return (
        f"On a machine with internet, download {url}?tf-hub-format=compressed (a .tar.gz), "
        f"unpack it, and either pass the unpacked directory as {flag} or unpack it into "
        f"{cache_path(url)}, the TF-Hub cache directory for this handle{note}."
    )


def resolve(handle, what, flag, example, error=HandleError):
    """`(local directory, stable name)` of a handle or directory.

    Args:
      handle: a directory, a URL (`https://tfhub.dev/...`) or a short handle.
      what: what is being resolved, for messages ("TF-Hub module", "classifier").
      flag: the command-line flag (and Python argument) that takes it, for messages.
      example: an example handle, for messages.
      error: the exception class to raise (a subclass of `errors.UserError`).

    Returns:
      The directory and a stable name: the URL for handles, the absolute path for
      directories (cache keys and reports use the name).

    Raises:
      error: no handle, a path that does not exist, or a handle that cannot be fetched
        (the message says what to download and where to unpack it).
    """
    if not handle:
        raise error(f"No {what} given: pass a TF-Hub handle or a directory as {flag}.")
    handle = os.fspath(handle)
    if tf.io.gfile.isdir(handle):
        return handle, handle if "://" in handle else os.path.abspath(handle)
    if not is_handle(handle):
        raise error(
            f"{what.capitalize()} {handle!r} is neither an existing directory nor a TF-Hub "
            f"handle (e.g. {example})."
        )
    url = url_of(handle)
    import tensorflow_hub as hub  # deferred: heavy, and only handles need it

    try:
        path = hub.resolve(url)
    except Exception as e:  # hub raises several types for network and cache failures
        local = "" if "://" in handle else f" (no local directory {handle!r} exists either)"
        raise error(
            f"Could not fetch {what} {url}{local} ({type(e).__name__}: {e}). "
            + download_help(url, flag)
        ) from e
    return path, url
