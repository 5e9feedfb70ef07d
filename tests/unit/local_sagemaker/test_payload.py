"""Payload codec against hand-computed expectations (pure functions, no server needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from local_sagemaker.payload import PayloadError, decode, encode, response_type


def test_csv_rows_and_missing_cells():
    rows = decode(b"1,2.5,-3\n\n4,,6e-1\r\n", "text/csv; charset=utf-8")
    assert rows.shape == (2, 3)
    assert rows[0].tolist() == [1.0, 2.5, -3.0]
    assert rows[1, 0] == 4.0 and math.isnan(rows[1, 1]) and rows[1, 2] == 0.6


@pytest.mark.parametrize(
    "doc",
    [
        {"instances": [[1, 2], [3, 4]]},
        [[1, 2], [3, 4]],
        {"instances": [{"features": [1, 2]}, {"features": [3, 4]}]},
    ],
)
def test_json_forms(doc):
    assert decode(json.dumps(doc).encode(), "application/json").tolist() == [[1, 2], [3, 4]]


def test_flat_json_list_is_one_row():
    assert decode(b"[1, 2, 3]", "application/json").tolist() == [[1, 2, 3]]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "fragment"),
    [
        (b"1,a", "text/csv", 400, "column 2"),
        (b"\xff\xfe", "text/csv", 400, "UTF-8"),
        (b'{"instances": [[true]]}', "application/json", 400, "instance 0"),
        (b"1", "application/x-protobuf", 415, "x-protobuf"),
    ],
)
def test_rejections_name_the_problem(body, ctype, status, fragment):
    with pytest.raises(PayloadError) as caught:
        decode(body, ctype)
    assert caught.value.status == status and fragment in str(caught.value)


def test_encode_csv_and_json_round_trip():
    scores = np.array([0.25, 0.75], dtype=np.float32)
    assert encode(scores, "text/csv") == b"0.25\n0.75"
    assert json.loads(encode(scores, "application/json")) == {
        "predictions": [{"score": 0.25}, {"score": 0.75}]
    }
    assert response_type(None) == "text/csv" and response_type("*/*") == "text/csv"
    with pytest.raises(PayloadError) as caught:
        response_type("text/html")
    assert caught.value.status == 406
