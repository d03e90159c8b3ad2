import gzip
import logging

import numpy as np
import pytest
from PIL import Image
from source_fakes import fer_csv, write_tar, write_zip

from imgclf.data.sources import FER_CLASSES, export_fer2013
from imgclf.errors import ImgclfError


def test_csv_rows_become_three_splits_and_broken_rows_are_counted(tmp_path, caplog):
    text, expected = fer_csv()
    (tmp_path / "fer2013.csv").write_text(text)
    with caplog.at_level(logging.WARNING):
        out = export_fer2013(tmp_path / "out", source=tmp_path / "fer2013.csv")
    assert "skipped 3 of 9 rows" in caplog.text
    assert "2303 pixel values, expected 2304" in caplog.text and "emotion '9'" in caplog.text
    present = sorted({FER_CLASSES[emotion] for rows in expected.values() for emotion, _ in rows})
    for split, rows in expected.items():
        assert sorted(p.name for p in (out / split).iterdir()) == present
        assert sum(1 for _ in (out / split).rglob("*.png")) == len(rows)
        for i, (emotion, pixels) in enumerate(rows):
            png = Image.open(out / split / FER_CLASSES[emotion] / f"{i:05d}.png")
            assert png.mode == "L"
            np.testing.assert_array_equal(np.asarray(png), pixels)


@pytest.mark.parametrize("form", ["csv.gz", "tar.gz", "zip"])
def test_compressed_and_archived_forms(tmp_path, form):
    text, expected = fer_csv()
    data = text.encode()
    source = tmp_path / f"fer2013.{form}"
    if form == "csv.gz":
        source.write_bytes(gzip.compress(data))
    elif form == "tar.gz":
        write_tar(source, {"fer2013/README": b"readme", "fer2013/fer2013.csv": data})
    else:
        write_zip(source, "data/fer2013.csv", data)
    out = export_fer2013(tmp_path / "out", source=source)
    assert {s: sum(1 for _ in (out / s).rglob("*.png")) for s in expected} == {"train": 3, "val": 1, "test": 2}


def test_no_valid_row_wrong_columns_and_no_source(tmp_path):
    (tmp_path / "bad.csv").write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    with pytest.raises(ImgclfError, match="no valid row.*1 data rows"):
        export_fer2013(tmp_path / "out", source=tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("label,image\n1,2\n")
    with pytest.raises(ImgclfError, match="columns emotion, pixels, Usage.*'image', 'label'"):
        export_fer2013(tmp_path / "out", source=tmp_path / "cols.csv")
    write_tar(tmp_path / "other.tar.gz", {"x/train.csv": b"a,b\n"})
    with pytest.raises(ImgclfError, match="an archive that holds fer2013.csv.*an archive without fer2013.csv"):
        export_fer2013(tmp_path / "out", source=tmp_path / "other.tar.gz")
    with pytest.raises(ImgclfError, match="no\\s+public address"):
        export_fer2013(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_md5_of_a_local_copy_is_checked_when_given(tmp_path):
    (tmp_path / "fer2013.csv").write_text(fer_csv()[0])
    with pytest.raises(ImgclfError, match="does not match md5"):
        export_fer2013(tmp_path / "out", source=tmp_path / "fer2013.csv", md5="0" * 32)
    with pytest.raises(ImgclfError, match="md5 must be 32 hexadecimal digits"):
        export_fer2013(tmp_path / "out", source=tmp_path / "fer2013.csv", md5="abc")
