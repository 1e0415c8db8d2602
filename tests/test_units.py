import pytest

from fphlib import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GiB", 4 << 30),
        ("512MiB", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("4096", 4096),
        (4096, 4096),
        (0, 0),
        ("16 GiB", 16 << 30),
        ("2g", 2 << 30),
        ("64KiB", 64 << 10),
        ("1TiB", 1 << 40),
        (".5MiB", 1 << 19),
    ],
)
def test_parse_size_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "4XB", "GiB", "-1GiB", "1.3B", "four", -5, True, None, [1]])
def test_parse_size_rejects_and_quotes_input(bad):
    with pytest.raises(ValueError) as info:
        parse_size(bad, field="guest_mem")
    message = str(info.value)
    assert "guest_mem" in message
    assert repr(bad) in message
    assert "GiB" in message  # shows an accepted example


def test_format_size_round_numbers():
    assert format_size(4 << 30) == "4 GiB"
    assert format_size(3 << 29) == "1.5 GiB"
    assert format_size(100) == "100 B"
