"""Tests of tf_cgan_transfer.tfhub: handle parsing, the Kaggle twin table, cache paths,
resolution order and the errors. No network: TF-Hub's download is patched to fail like
tfhub.dev does (HTTP 403), and `kagglehub` is a fake module put in `sys.modules`.
"""

import os
import sys
import tempfile
import types
import urllib.error
from unittest import mock

import tensorflow as tf
import tensorflow_gan as tfgan
import tensorflow_hub as hub

from tf_cgan_transfer import errors
from tf_cgan_transfer import tfhub

BIGGAN_256_URL = "https://tfhub.dev/deepmind/biggan-256/2"
BIGGAN_256_KAGGLE = "deepmind/biggan/tensorFlow1/256/2"
# sha1 of the URLs, written out so that a change of the cache key shows.
BIGGAN_256_SHA1 = "2e17c90b221d9070806abb0f318117b362586381"
INCEPTION_SHA1 = "c4be6b55dc0338e82546082d22184ebdc77d76cf"


def fake_kagglehub(result=None, exception=None):
    """A stand-in `kagglehub` module whose `model_download` returns `result` or raises.

    Its `calls` list records the handles it was asked for.
    """
    module = types.ModuleType("kagglehub")
    module.calls = []

    def model_download(handle):
        module.calls.append(handle)
        if exception is not None:
            raise exception
        return result

    module.model_download = model_download
    return module


def forbidden(url):
    """What `hub.resolve` raises when tfhub.dev's redirect to Kaggle storage is refused."""
    raise urllib.error.HTTPError(url, 403, "Forbidden", None, None)


class TwinTableTest(tf.test.TestCase):
    def test_every_tfhub_handle_maps_to_a_well_formed_kaggle_handle_and_back(self):
        self.assertLen(tfhub.KAGGLE_TWINS, 7)
        for short, kaggle in tfhub.KAGGLE_TWINS.items():
            self.assertIsNone(tfhub.parse_kaggle(short), short)  # tfhub.dev's, not Kaggle's
            self.assertTrue(tfhub.is_handle(short))
            parsed = tfhub.parse_kaggle(kaggle)
            self.assertEqual(str(parsed), kaggle)  # the table holds canonical spellings
            self.assertEqual(parsed.framework, "tensorFlow1")  # TF1 Hub format modules
            self.assertEqual(tfhub.TFHUB_TWINS[kaggle], short)
            self.assertEqual(tfhub.url_of(kaggle), tfhub.TFHUB_URL + short)
            self.assertEqual(tfhub.kaggle_twin(tfhub.TFHUB_URL + short), parsed)
        self.assertLen(tfhub.TFHUB_TWINS, len(tfhub.KAGGLE_TWINS))  # one twin each

    def test_the_handles_the_project_uses_have_their_twins(self):
        expected = {
            "deepmind/biggan-128/2": "deepmind/biggan/tensorFlow1/128/2",
            "deepmind/biggan-512/2": "deepmind/biggan/tensorFlow1/512/2",
            "deepmind/biggan-deep-256/1": "deepmind/biggan-deep/tensorFlow1/256/1",
            "tensorflow/tfgan/eval/inception/1": (
                "tensorflow/inception/tensorFlow1/tfgan-eval-inception/1"
            ),
        }
        for short, kaggle in expected.items():
            self.assertEqual(tfhub.KAGGLE_TWINS[short], kaggle)
        # TF-GAN's default classifier URL, as the code spells it.
        self.assertEqual(
            str(tfhub.kaggle_twin(tfgan.eval.INCEPTION_TFHUB)),
            expected["tensorflow/tfgan/eval/inception/1"],
        )
        self.assertIsNone(tfhub.kaggle_twin("google/some/other/module/3"))


class ParseTest(tf.test.TestCase):
    def test_handles_and_urls_in_every_spelling(self):
        expected = tfhub.KaggleHandle("deepmind", "biggan", "tensorFlow1", "128", 2)
        for text in (
            "deepmind/biggan/tensorFlow1/128/2",
            "deepmind/biggan/TensorFlow1/128/2/",
            "deepmind/biggan/TENSORFLOW1/128/2",
            "https://www.kaggle.com/models/deepmind/biggan/TensorFlow1/128/2",
            "https://www.kaggle.com/models/deepmind/biggan/tensorflow1/128/2//",
            "http://kaggle.com/models/deepmind/biggan/TensorFlow1/128/2",
            "https://www.kaggle.com/models/deepmind/biggan/frameworks/TensorFlow1/"
            "variations/128/versions/2",
        ):
            self.assertEqual(tfhub.parse_kaggle(text), expected, text)
            self.assertTrue(tfhub.is_handle(text))
            self.assertEqual(tfhub.url_of(text), "https://tfhub.dev/deepmind/biggan-128/2")
        self.assertEqual(
            expected.url, "https://www.kaggle.com/models/deepmind/biggan/tensorFlow1/128/2"
        )

    def test_tfhub_handles_are_not_kaggle_handles(self):
        for text in (
            "deepmind/biggan-128/2",
            "https://tfhub.dev/deepmind/biggan-128/2",
            "tensorflow/tfgan/eval/inception/1",  # five parts, but "eval" is no framework
            "google/some/other/module/3",  # "other" is, but too common a word to tell
            "/some/local/dir",
        ):
            self.assertIsNone(tfhub.parse_kaggle(text), text)
        self.assertEqual(
            tfhub.url_of("https://tfhub.dev/deepmind/biggan-128/2/"),
            "https://tfhub.dev/deepmind/biggan-128/2",
        )

    def test_a_kaggle_handle_without_a_tfhub_twin_is_named_by_its_kaggle_url(self):
        handle = "someone/flowers-gan/TensorFlow2/64/3"
        self.assertEqual(
            tfhub.url_of(handle),
            "https://www.kaggle.com/models/someone/flowers-gan/tensorFlow2/64/3",
        )
        self.assertEqual(str(tfhub.kaggle_twin(handle)), "someone/flowers-gan/tensorFlow2/64/3")

    def test_bad_kaggle_handles_are_rejected_with_the_expected_form(self):
        for text, message in (
            ("deepmind/biggan/tensorFlow1/128", r"Malformed .*owner/model/framework/variation/"),
            ("https://www.kaggle.com/models/deepmind/biggan", "Malformed Kaggle Models handle"),
            ("https://www.kaggle.com/models/", "Malformed Kaggle Models handle"),
            ("deepmind//tensorFlow1/128/2", "with no empty part"),
            ("deepmind/biggan/tensorFlow1/128/latest", r"no version \('latest'\)"),
            ("deepmind/biggan/tensorFlow1/128/0", r"no version \('0'\)"),
            ("deepmind/biggan/PyTorch/128/2", "framework 'PyTorch': only tensorFlow1 and"),
            (
                "https://www.kaggle.com/models/google/gemma/keras/2b/1",
                "framework 'keras': only tensorFlow1 and",
            ),
            (
                "https://www.kaggle.com/models/deepmind/biggan/TensorFlow1/128/2?x=1",
                "has a query or fragment",
            ),
        ):
            with self.assertRaisesRegex(tfhub.HandleError, message, msg=text):
                tfhub.parse_kaggle(text)
        self.assertTrue(issubclass(tfhub.HandleError, errors.UserError))


class CachePathTest(tf.test.TestCase):
    def test_cache_path_is_the_sha1_of_the_tfhub_url_under_the_cache_root(self):
        root = self.create_tempdir().full_path
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": root}):
            self.assertEqual(
                tfhub.cache_path(tfgan.eval.INCEPTION_TFHUB), os.path.join(root, INCEPTION_SHA1)
            )
            # Every spelling of a module shares one cache directory.
            for handle in (
                "tensorflow/tfgan/eval/inception/1",
                "https://tfhub.dev/tensorflow/tfgan/eval/inception/1/",
                tfhub.KAGGLE_TWINS["tensorflow/tfgan/eval/inception/1"],
                "https://www.kaggle.com/models/tensorflow/inception/TensorFlow1/"
                "tfgan-eval-inception/1",
            ):
                self.assertEqual(tfhub.cache_path(handle), os.path.join(root, INCEPTION_SHA1))

    def test_default_cache_root_is_tfhubs(self):
        environ = {k: v for k, v in os.environ.items() if k != "TFHUB_CACHE_DIR"}
        with mock.patch.dict(os.environ, environ, clear=True):
            self.assertEqual(
                tfhub.cache_path(tfgan.eval.INCEPTION_TFHUB),
                os.path.join(tempfile.gettempdir(), "tfhub_modules", INCEPTION_SHA1),
            )


class ResolveTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.cache = self.create_tempdir().full_path
        self.enter_context(mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": self.cache}))
        self.cached = tfhub.cache_path(BIGGAN_256_URL)

    def resolve(self, handle):
        return tfhub.resolve(handle, "TF-Hub module", "--source", "deepmind/biggan-128/2")

    def module_dir(self):
        path = self.create_tempdir().full_path
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"fake")
        return path

    def test_cache_path_digest(self):
        self.assertEqual(os.path.basename(self.cached), BIGGAN_256_SHA1)

    def test_a_cached_module_is_used_without_kagglehub_or_network(self):
        os.makedirs(self.cached)
        with open(os.path.join(self.cached, "saved_model.pb"), "wb") as f:
            f.write(b"fake")
        kagglehub = fake_kagglehub(exception=AssertionError("must not be called"))
        with mock.patch.dict(sys.modules, {"kagglehub": kagglehub}), mock.patch.object(
            hub, "resolve", side_effect=AssertionError("must not be called")
        ):
            for handle in (BIGGAN_256_URL, "deepmind/biggan-256/2", BIGGAN_256_KAGGLE):
                self.assertEqual(self.resolve(handle), (self.cached, BIGGAN_256_URL))
        self.assertEqual(kagglehub.calls, [])

    def test_kagglehub_fetches_the_kaggle_twin_when_installed(self):
        downloaded = self.module_dir()
        kagglehub = fake_kagglehub(result=downloaded)
        with mock.patch.dict(sys.modules, {"kagglehub": kagglehub}), mock.patch.object(
            hub, "resolve", side_effect=AssertionError("TF-Hub must not be asked")
        ):
            for handle in (
                "deepmind/biggan-256/2",
                "https://www.kaggle.com/models/deepmind/biggan/TensorFlow1/256/2/",
            ):
                self.assertEqual(self.resolve(handle), (downloaded, BIGGAN_256_URL))
        self.assertEqual(kagglehub.calls, [BIGGAN_256_KAGGLE] * 2)  # the canonical spelling

    def test_without_kagglehub_tfhub_resolves_the_tfhub_url(self):
        downloaded = self.module_dir()
        with mock.patch.dict(sys.modules, {"kagglehub": None}), mock.patch.object(
            hub, "resolve", return_value=downloaded
        ) as resolve:
            self.assertEqual(self.resolve(BIGGAN_256_KAGGLE), (downloaded, BIGGAN_256_URL))
        resolve.assert_called_once_with(BIGGAN_256_URL)

    def test_a_module_without_a_kaggle_twin_skips_kagglehub(self):
        downloaded = self.module_dir()
        kagglehub = fake_kagglehub(exception=AssertionError("must not be called"))
        url = "https://tfhub.dev/google/some/module/3"
        with mock.patch.dict(sys.modules, {"kagglehub": kagglehub}), mock.patch.object(
            hub, "resolve", return_value=downloaded
        ) as resolve:
            self.assertEqual(self.resolve("google/some/module/3"), (downloaded, url))
        resolve.assert_called_once_with(url)

    def test_403_without_kagglehub_names_both_ways_and_the_cache_path(self):
        with mock.patch.dict(sys.modules, {"kagglehub": None}), mock.patch.object(
            hub, "resolve", side_effect=forbidden
        ):
            with self.assertRaises(tfhub.HandleError) as caught:
                self.resolve("deepmind/biggan-256/2")
        message = str(caught.exception)
        for part in (
            f"Could not fetch TF-Hub module {BIGGAN_256_URL}",
            "HTTP Error 403: Forbidden",
            f"pip install kagglehub and run again: the module is then fetched as Kaggle "
            f"Models' {BIGGAN_256_KAGGLE}",
            f"download {BIGGAN_256_URL}?tf-hub-format=compressed",
            f"https://www.kaggle.com/models/{BIGGAN_256_KAGGLE} (its Download button)",
            "pass the unpacked directory as --source",
            f"unpack it into {os.path.join(self.cache, BIGGAN_256_SHA1)}, the TF-Hub cache",
        ):
            self.assertIn(part, message)
        self.assertNotIn("\n", message)  # one line: cli.run prints it as `error: ...`
        self.assertIn("which may also be passed as the handle", message)

    def test_kagglehub_failure_names_both_ways_and_the_cache_path(self):
        kagglehub = fake_kagglehub(exception=ConnectionError("Kaggle is unreachable"))
        with mock.patch.dict(sys.modules, {"kagglehub": kagglehub}), mock.patch.object(
            hub, "resolve", side_effect=AssertionError("one attempt, one error")
        ):
            with self.assertRaises(tfhub.HandleError) as caught:
                self.resolve(BIGGAN_256_KAGGLE)
        message = str(caught.exception)
        for part in (
            f"through kagglehub as {BIGGAN_256_KAGGLE} (ConnectionError: Kaggle is unreachable)",
            f"(1) kagglehub (installed here) with Kaggle Models' {BIGGAN_256_KAGGLE}",
            f"(2) on a machine with internet, download {BIGGAN_256_URL}?tf-hub-format=compressed",
            f"unpack it into {self.cached}",
        ):
            self.assertIn(part, message)

    def test_kagglehub_returning_no_directory_is_an_error(self):
        kagglehub = fake_kagglehub(result=os.path.join(self.cache, "missing"))
        with mock.patch.dict(sys.modules, {"kagglehub": kagglehub}):
            with self.assertRaisesRegex(tfhub.HandleError, "which is not a directory"):
                self.resolve("deepmind/biggan-256/2")

    def test_errors_come_in_the_callers_class(self):
        class ModuleError(errors.UserError):
            pass

        for handle, message in (
            ("deepmind/biggan/tensorFlow1/256", "Malformed Kaggle Models handle"),
            ("not a handle", "neither an existing directory nor a TF-Hub handle nor a Kaggle"),
            ("", "No classifier given"),
        ):
            with self.assertRaisesRegex(ModuleError, message):
                tfhub.resolve(handle, "classifier", "--classifier", "x", error=ModuleError)

    def test_a_directory_is_used_as_is(self):
        path = self.module_dir()
        self.assertEqual(self.resolve(path), (path, os.path.abspath(path)))
