"""The one resolver of model handles: local directories, TF-Hub and Kaggle Models handles.

Used for BigGAN modules (`hub_import`) and for the FID classifier (`classifier`). A
handle is one of:

* a local directory (an unpacked module or SavedModel), used as is;
* a tfhub.dev URL or short handle: `https://tfhub.dev/deepmind/biggan-128/2`,
  `deepmind/biggan-128/2`, `tensorflow/tfgan/eval/inception/1`;
* a Kaggle Models handle or URL, `owner/model/framework/variation/version`:
  `deepmind/biggan/tensorFlow1/128/2`,
  `https://www.kaggle.com/models/deepmind/biggan/TensorFlow1/128/2` (the framework in any
  case; the page form `.../frameworks/F/variations/V/versions/N` too).

TF-Hub's models moved to Kaggle Models, and tfhub.dev downloads now often fail (HTTP
403). `KAGGLE_TWINS` maps each tfhub.dev module the project knows to its Kaggle twin, so
both spellings name one module, with one stable name (its tfhub.dev URL) and one TF-Hub
cache directory. A handle resolves to the first of:

1. its TF-Hub cache directory, `<cache root>/<sha1 of its URL>`, if that holds files (no
   network; the cache root is `$TFHUB_CACHE_DIR`, else TF-Hub's default under the
   system's temp directory);
2. `kagglehub.model_download(kaggle handle)`, when the optional package `kagglehub`
   (`pip install kagglehub`) is importable and the handle has a Kaggle form;
3. `tensorflow_hub.resolve(url)`, which downloads into the TF-Hub cache.

A failure raises one error naming both ways to get the module (kagglehub, or a manual
download) and the exact directory to unpack it to.
"""

import dataclasses
import hashlib
import importlib
import os
import re
import tempfile

import tensorflow as tf

from tf_cgan_transfer import errors

TFHUB_URL = "https://tfhub.dev/"
KAGGLE_MODELS_URL = "https://www.kaggle.com/models/"
# tfhub.dev short handle -> its Kaggle Models twin. The BigGAN modules the importer reads
# (version 2), the BigGAN-deep ones (version 1; the importer names them as such) and
# TF-GAN's eval Inception, the default FID classifier.
KAGGLE_TWINS = {
    "deepmind/biggan-128/2": "deepmind/biggan/tensorFlow1/128/2",
    "deepmind/biggan-256/2": "deepmind/biggan/tensorFlow1/256/2",
    "deepmind/biggan-512/2": "deepmind/biggan/tensorFlow1/512/2",
    "deepmind/biggan-deep-128/1": "deepmind/biggan-deep/tensorFlow1/128/1",
    "deepmind/biggan-deep-256/1": "deepmind/biggan-deep/tensorFlow1/256/1",
    "deepmind/biggan-deep-512/1": "deepmind/biggan-deep/tensorFlow1/512/1",
    "tensorflow/tfgan/eval/inception/1": "tensorflow/inception/tensorFlow1/tfgan-eval-inception/1",
}
TFHUB_TWINS = {kaggle: tfhub for tfhub, kaggle in KAGGLE_TWINS.items()}
# Kaggle's framework names as kagglehub spells them; matching is case-insensitive. Only
# the TensorFlow ones hold what loads here (TF1 Hub format modules, SavedModels); the
# others are recognised to be refused by name. A short handle is Kaggle's only for a
# distinctive framework: a tfhub.dev handle's third part may be a word like "other".
LOADABLE_FRAMEWORKS = ("tensorFlow1", "tensorFlow2")
_DISTINCTIVE_FRAMEWORKS = LOADABLE_FRAMEWORKS + ("tfLite", "tfJs", "pyTorch")
_FRAMEWORKS = {
    f.lower(): f
    for f in _DISTINCTIVE_FRAMEWORKS + ("jax", "flax", "keras", "transformers", "other")
}
_URL = re.compile(r"^(https?|gs)://")
_KAGGLE_URL = re.compile(r"^https?://(www\.)?kaggle\.com/models(/|$)", re.IGNORECASE)
# owner/name[/more]/version, e.g. deepmind/biggan-128/2 or tensorflow/tfgan/eval/inception/1
_SHORT_HANDLE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)+/\d+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_KAGGLE_PARTS = "owner/model/framework/variation/version"
_KAGGLE_FORM = f"{_KAGGLE_PARTS} (e.g. deepmind/biggan/tensorFlow1/128/2)"


class HandleError(errors.UserError, ValueError):
    """A handle that names nothing usable; the message says what to download or pass."""


@dataclasses.dataclass(frozen=True)
class KaggleHandle:
    """A Kaggle Models handle; `str()` is kagglehub's `owner/model/framework/variation/version`."""

    owner: str
    model: str
    framework: str  # canonical spelling ("tensorFlow1")
    variation: str
    version: int

    def __str__(self):
        return f"{self.owner}/{self.model}/{self.framework}/{self.variation}/{self.version}"

    @property
    def url(self):
        """The model version's page, `https://www.kaggle.com/models/<handle>`."""
        return KAGGLE_MODELS_URL + str(self)


def _kaggle_parts(text):
    """The path segments of a Kaggle Models handle or URL; None when `text` is neither."""
    text = text.strip()
    if _KAGGLE_URL.match(text):
        if re.search(r"[?#]", text):
            raise HandleError(
                f"Kaggle Models URL {text!r} has a query or fragment: pass the model "
                f"version's URL alone, {KAGGLE_MODELS_URL}{_KAGGLE_PARTS}."
            )
        parts = _KAGGLE_URL.sub("", text).strip("/").split("/")
        # The web page's long form: owner/model/frameworks/F/variations/V/versions/N.
        if len(parts) == 8 and [p.lower() for p in parts[2::2]] == [
            "frameworks",
            "variations",
            "versions",
        ]:
            parts = parts[:2] + parts[3::2]
        return parts
    parts = text.rstrip("/").split("/")
    # A short handle is Kaggle's when its third part names a Kaggle framework (tfhub.dev
    # handles such as tensorflow/tfgan/eval/inception/1 have five parts too).
    distinctive = {f.lower() for f in _DISTINCTIVE_FRAMEWORKS}
    if len(parts) in (4, 5) and parts[2].lower() in distinctive and "://" not in text:
        return parts
    return None


def parse_kaggle(text):
    """The `KaggleHandle` of a Kaggle Models handle or URL, or None if `text` is neither.

    Raises:
      HandleError: `text` is Kaggle's but malformed (parts missing or empty, no integer
        version, a framework whose models do not load here); the message says the form.
    """
    parts = _kaggle_parts(os.fspath(text))
    if parts is None:
        return None
    if len(parts) != 5 or not all(_SEGMENT.match(p) for p in parts):
        raise HandleError(
            f"Malformed Kaggle Models handle {text!r}: expected {_KAGGLE_FORM} or its "
            f"URL {KAGGLE_MODELS_URL}..., with no empty part."
        )
    owner, model, framework, variation, version = parts
    if not version.isdigit() or int(version) < 1:
        raise HandleError(
            f"Kaggle Models handle {text!r} has no version ({version!r}): end it with the "
            "version number (e.g. .../128/2), so that a run always loads the same model."
        )
    canonical = _FRAMEWORKS.get(framework.lower())
    if canonical not in LOADABLE_FRAMEWORKS:
        raise HandleError(
            f"Kaggle Models handle {text!r} names framework {framework!r}: only "
            f"{' and '.join(LOADABLE_FRAMEWORKS)} models (TF-Hub format modules, "
            "SavedModels) load here."
        )
    return KaggleHandle(owner, model, canonical, variation, int(version))


def _tfhub_short(text):
    """`owner/name/.../version` of a tfhub.dev URL or short handle, else None."""
    text = text.strip()
    if text.startswith(TFHUB_URL):
        text = text[len(TFHUB_URL) :]
    elif "://" in text:
        return None
    text = text.rstrip("/")
    return text if _SHORT_HANDLE.match(text) else None


def is_handle(text):
    """True for a URL, a short TF-Hub handle or a Kaggle Models handle (not a directory).

    Raises:
      HandleError: a malformed Kaggle Models handle or URL.
    """
    text = os.fspath(text)
    return bool(parse_kaggle(text) or _URL.match(text) or _SHORT_HANDLE.match(text))


def kaggle_twin(handle):
    """The `KaggleHandle` of a Kaggle handle, or of a known tfhub.dev module; else None."""
    kaggle = parse_kaggle(handle)
    if kaggle is not None:
        return kaggle
    short = _tfhub_short(os.fspath(handle))
    return parse_kaggle(KAGGLE_TWINS[short]) if short in KAGGLE_TWINS else None


def url_of(handle):
    """The stable URL of a handle: its tfhub.dev URL when it has one, else its own URL.

    `deepmind/biggan-128/2`, `https://tfhub.dev/deepmind/biggan-128/2/` and
    `deepmind/biggan/TensorFlow1/128/2` all give `https://tfhub.dev/deepmind/biggan-128/2`;
    a Kaggle handle without a tfhub.dev twin gives its Kaggle URL. The URL names the
    module in reports and cache keys, and its sha1 names its TF-Hub cache directory.
    """
    handle = os.fspath(handle)
    kaggle = parse_kaggle(handle)
    if kaggle is not None:
        short = TFHUB_TWINS.get(str(kaggle))
        return TFHUB_URL + short if short else kaggle.url
    short = _tfhub_short(handle)
    if short is not None:
        return TFHUB_URL + short
    return handle


def cache_root():
    """TF-Hub's cache root: `$TFHUB_CACHE_DIR`, else its default under the temp directory."""
    try:
        from tensorflow_hub import resolver  # deferred: heavy; reads --tfhub_cache_dir too

        return resolver.tfhub_cache_dir(use_temp=True)
    except (ImportError, AttributeError):  # another hub release: its documented default
        return os.environ.get("TFHUB_CACHE_DIR") or os.path.join(
            tempfile.gettempdir(), "tfhub_modules"
        )


def cache_path(handle):
    """The TF-Hub cache directory of a handle or URL: `<root>/<sha1 of url_of(handle)>`.

    Every spelling of a module gives the same directory: `deepmind/biggan-128/2`, its URL
    and its Kaggle twin `deepmind/biggan/tensorFlow1/128/2`.
    """
    url = url_of(handle)
    return os.path.join(cache_root(), hashlib.sha1(url.encode("utf8")).hexdigest())


def import_kagglehub():
    """The `kagglehub` module if it is installed, else None.

    kagglehub is optional (`pip install kagglehub`): imported by name at run time, so
    that neither the requirements nor BUILD depend on it.
    """
    try:
        return importlib.import_module("kagglehub")
    except ImportError:
        return None


def download_help(handle, flag, kagglehub_failed=False):
    """Both ways to get a module by hand, and the exact directory to unpack it to."""
    url = url_of(handle)
    kaggle = kaggle_twin(handle)
    if kaggle is None:
        way_1 = (
            "pip install kagglehub and pass the module's Kaggle Models handle "
            f"({_KAGGLE_PARTS}, found at {KAGGLE_MODELS_URL})"
        )
    elif kagglehub_failed:
        way_1 = (
            f"kagglehub (installed here) with Kaggle Models' {kaggle}: run again once Kaggle "
            "is reachable"
        )
    else:
        also = "" if parse_kaggle(handle) else " (which may also be passed as the handle)"
        way_1 = (
            f"pip install kagglehub and run again: the module is then fetched as Kaggle "
            f"Models' {kaggle}{also}"
        )
    archives = [f"{url}?tf-hub-format=compressed"] if url.startswith(TFHUB_URL) else []
    if kaggle is not None:
        archives.append(f"the archive of {kaggle.url} (its Download button)")
    note = "" if os.environ.get("TFHUB_CACHE_DIR") else " (TFHUB_CACHE_DIR sets its root)"
    return (
        f"Two ways to get it: (1) {way_1}; (2) on a machine with internet, download "
        f"{' or '.join(archives)}, unpack the .tar.gz, and either pass the unpacked "
        f"directory as {flag} or unpack it into {cache_path(url)}, the TF-Hub cache "
        f"directory looked up for this handle{note}."
    )


def _fetch(handle, url, flag, what, error):
    """The local directory of a handle, downloaded by kagglehub or TF-Hub."""
    kaggle = kaggle_twin(handle)
    kagglehub = import_kagglehub() if kaggle is not None else None
    if kagglehub is not None:
        try:
            path = kagglehub.model_download(str(kaggle))
            if not tf.io.gfile.isdir(path):
                raise FileNotFoundError(f"it returned {path!r}, which is not a directory")
            return path
        except Exception as e:  # network, HTTP, auth and cache failures all land here
            raise error(
                f"Could not fetch {what} {url} through kagglehub as {kaggle} "
                f"({type(e).__name__}: {e}). " + download_help(handle, flag, True)
            ) from e
    import tensorflow_hub as hub  # deferred: heavy, and only handles need it

    try:
        return hub.resolve(url)
    except Exception as e:  # hub raises several types for network and cache failures
        local = f" (no local directory {handle!r} exists either)" if "://" not in handle else ""
        raise error(
            f"Could not fetch {what} {url}{local} ({type(e).__name__}: {e}). "
            + download_help(handle, flag)
        ) from e


def resolve(handle, what, flag, example, error=HandleError):
    """`(local directory, stable name)` of a handle or directory.

    Args:
      handle: a directory, a tfhub.dev URL or short handle, or a Kaggle Models handle or
        URL (module docstring).
      what: what is being resolved, for messages ("TF-Hub module", "classifier").
      flag: the command-line flag (and Python argument) that takes it, for messages.
      example: an example handle, for messages.
      error: the exception class to raise (a subclass of `errors.UserError`).

    Returns:
      The directory and a stable name: `url_of(handle)` for handles (the same for a
      tfhub.dev module and its Kaggle twin), the absolute path for directories (cache
      keys and reports use the name).

    Raises:
      error: no handle, a path that does not exist, a malformed handle, or a handle that
        cannot be fetched (the message says both ways to get it and where to unpack it).
    """
    if not handle:
        raise error(f"No {what} given: pass a TF-Hub or Kaggle handle or a directory as {flag}.")
    handle = os.fspath(handle)
    if tf.io.gfile.isdir(handle):
        return handle, handle if "://" in handle else os.path.abspath(handle)
    try:
        known = is_handle(handle)
    except HandleError as e:  # a malformed Kaggle handle, raised in the caller's class
        if isinstance(e, error):
            raise
        raise error(str(e)) from e
    if not known:
        raise error(
            f"{what.capitalize()} {handle!r} is neither an existing directory nor a TF-Hub "
            f"handle nor a Kaggle Models handle (e.g. {example})."
        )
    url = url_of(handle)
    cached = cache_path(url)
    if tf.io.gfile.isdir(cached) and tf.io.gfile.listdir(cached):  # as TF-Hub's own check
        return cached, url
    return _fetch(handle, url, flag, what, error), url
