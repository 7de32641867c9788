"""The source registry lists every SPEC dataset with URLs and the published checksums."""

import re

import pytest
from torchvision import datasets as tvd

from cnnpipe.data.sources import SOURCES, get_source
from cnnpipe.errors import ParamError


def test_every_spec_dataset_is_registered_with_a_reader_kind():
    assert set(SOURCES) == {
        "mnist", "fashion_mnist", "cifar10", "celeba", "horse_or_human", "rps", "cats_vs_dogs",
    }  # fmt: skip
    assert {s.kind for s in SOURCES.values()} == {"idx", "cifar", "celeba", "imagefolder", "classfolders"}


def test_checksums_are_torchvisions_where_published():
    def md5s(name):
        return {f.name: f.md5 for f in SOURCES[name].files}

    assert md5s("mnist") == dict(tvd.MNIST.resources)
    assert md5s("fashion_mnist") == dict(tvd.FashionMNIST.resources)
    assert md5s("cifar10") == {tvd.CIFAR10.filename: tvd.CIFAR10.tgz_md5}
    celeba = {name: md5 for _, md5, name in tvd.CelebA.file_list}
    assert all(celeba[name] == md5 for name, md5 in md5s("celeba").items())


def test_mnist_has_torchvisions_fallback_mirrors_in_order():
    urls = SOURCES["mnist"].files[0].urls
    assert [u.rsplit("/", 1)[0] + "/" for u in urls] == tvd.MNIST.mirrors


def test_google_storage_zips_have_no_checksum_and_several_urls():
    for name in ("horse_or_human", "rps"):
        for f in SOURCES[name].files:
            assert f.md5 is None and len(f.urls) >= 2 and all(u.endswith("/" + f.name) for u in f.urls)


def test_dogs_vs_cats_is_microsofts_zip_without_a_checksum():
    (file,) = SOURCES["cats_vs_dogs"].files
    assert SOURCES["cats_vs_dogs"].kind == "classfolders"
    assert file.name == "kagglecatsanddogs_5340.zip" and file.md5 is None
    assert file.urls == (
        "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
        "kagglecatsanddogs_5340.zip",
    )


def test_every_url_is_http_and_every_md5_well_formed():
    for source in SOURCES.values():
        for f in source.files:
            assert f.urls and all(re.match(r"https?://", u) for u in f.urls)
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ParamError, match="celeba, cifar10"):
        get_source("imagenet")
