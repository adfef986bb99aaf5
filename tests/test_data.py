"""Unit tests of the data helpers: loading, splitting, scaling and windowing."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import gan_helpers as gh


def write_csv(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------
# make_toy_series
# ---------------------------------------------------------------------------


def test_toy_series_columns_and_values():
    frame = gh.make_toy_series(num_points=50, step=0.1, noise_std=0.0)
    assert list(frame.columns) == ["t", "value"]
    assert len(frame) == 50
    np.testing.assert_allclose(frame["t"], np.arange(50) * 0.1)
    np.testing.assert_allclose(frame["value"], np.sin(np.arange(50) * 0.1))


def test_toy_series_same_seed_same_noise():
    first = gh.make_toy_series(num_points=30, seed=3)
    second = gh.make_toy_series(num_points=30, seed=3)
    other = gh.make_toy_series(num_points=30, seed=4)
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first["value"], other["value"])


# ---------------------------------------------------------------------------
# load_series: accepted inputs
# ---------------------------------------------------------------------------


def test_load_series_csv_with_time_column(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1.5\n1,2.5\n2,0.5\n")
    series = gh.load_series(path, time_column="t")
    assert series.dtype == np.float64
    assert series.name == "value"
    assert series.index.name == "t"
    assert series.index.tolist() == [0, 1, 2]
    assert series.tolist() == [1.5, 2.5, 0.5]


def test_load_series_csv_with_dates(tmp_path):
    text = "date,co2\n2000-01-01,1\n2000-01-08,2\n2000-01-15,4\n"
    series = gh.load_series(write_csv(tmp_path, text), time_column="date")
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.index[1] == pd.Timestamp("2000-01-08")
    assert series.tolist() == [1.0, 2.0, 4.0]


def test_load_series_dataframe_with_column():
    frame = pd.DataFrame({"t": [0, 1, 2], "a": [1, 2, 3], "b": [5.0, 6.0, 4.0]})
    series = gh.load_series(frame, column="b", time_column="t")
    assert series.tolist() == [5.0, 6.0, 4.0]
    assert series.name == "b"


def test_load_series_leaves_dataframe_unchanged():
    frame = pd.DataFrame({"value": [1.0, np.nan, 3.0]})
    gh.load_series(frame, missing="interpolate")
    assert np.isnan(frame["value"].iloc[1])


@pytest.mark.parametrize(
    "source",
    [
        np.array([1.0, 3.0, 2.0]),
        np.array([[1.0], [3.0], [2.0]]),
        [1, 3, 2],
        pd.Series([1.0, 3.0, 2.0]),
    ],
    ids=["1-D array", "one-column array", "list", "Series"],
)
def test_load_series_array_like(source):
    series = gh.load_series(source)
    assert series.tolist() == [1.0, 3.0, 2.0]
    assert series.dtype == np.float64


# ---------------------------------------------------------------------------
# load_series: rejected inputs
# ---------------------------------------------------------------------------


def test_load_series_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="series file not found"):
        gh.load_series(tmp_path / "missing.csv")


def test_load_series_empty_file(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        gh.load_series(write_csv(tmp_path, ""))


def test_load_series_blank_lines_only(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        gh.load_series(write_csv(tmp_path, "\n\n"))


def test_load_series_header_only(tmp_path):
    with pytest.raises(ValueError, match="has a header but no rows"):
        gh.load_series(write_csv(tmp_path, "t,value\n"))


def test_load_series_unknown_column_lists_columns(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n1,2\n")
    with pytest.raises(KeyError, match=r"column 'co2' not found.*\['t', 'value'\]"):
        gh.load_series(path, column="co2")


def test_load_series_unknown_time_column(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n1,2\n")
    expected = r"time column 'date' not found.*\['t', 'value'\]"
    with pytest.raises(KeyError, match=expected):
        gh.load_series(path, time_column="date")


def test_load_series_non_numeric_value(tmp_path):
    path = write_csv(tmp_path, "value\n1.0\n2.0\nabc\n4.0\n")
    with pytest.raises(ValueError, match="non-numeric value 'abc' at row 2"):
        gh.load_series(path)


def test_load_series_missing_values_counted(tmp_path):
    path = write_csv(tmp_path, "value\n1.0\n\n3.0\nNaN\n5.0\n")
    with pytest.raises(ValueError, match=r"2 missing values, at rows \[1, 3\]"):
        gh.load_series(path)


def test_load_series_interpolates_missing(tmp_path, capsys):
    path = write_csv(tmp_path, "value\n1.0\n\n3.0\nNaN\n5.0\n")
    series = gh.load_series(path, missing="interpolate")
    assert series.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "interpolated 2 missing values of 'value'" in capsys.readouterr().out


def test_load_series_ignores_trailing_blank_lines(tmp_path):
    series = gh.load_series(write_csv(tmp_path, "\nvalue\n1.0\n3.0\n\n\n"))
    assert series.tolist() == [1.0, 3.0]


def test_load_series_blank_line_with_time_column(tmp_path):
    # A blank line in a file with a time column carries no timestamp to keep.
    path = write_csv(tmp_path, "t,value\n0,1.0\n\n1,3.0\n")
    series = gh.load_series(path, time_column="t")
    assert series.tolist() == [1.0, 3.0]


def test_load_series_interpolates_edges():
    series = gh.load_series([np.nan, 2.0, 4.0, np.nan], missing="interpolate")
    assert series.tolist() == [2.0, 2.0, 4.0, 4.0]


def test_load_series_all_missing_rejected():
    with pytest.raises(ValueError, match="every row is missing"):
        gh.load_series([np.nan, np.nan, np.nan], missing="interpolate")


def test_load_series_invalid_missing_policy():
    with pytest.raises(ValueError, match="invalid missing='drop'"):
        gh.load_series([1.0, 2.0], missing="drop")


def test_load_series_infinite_values(tmp_path):
    path = write_csv(tmp_path, "value\n1.0\ninf\n3.0\n-inf\n")
    with pytest.raises(ValueError, match=r"2 infinite values, at rows \[1, 3\]"):
        gh.load_series(path)


def test_load_series_unsorted_timestamps(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n2,2\n1,3\n3,4\n")
    with pytest.raises(ValueError, match="is not sorted: row 2"):
        gh.load_series(path, time_column="t")


def test_load_series_duplicated_timestamps(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n1,2\n1,3\n2,4\n")
    with pytest.raises(ValueError, match="1 duplicated timestamps, the first at row 2"):
        gh.load_series(path, time_column="t")


def test_load_series_irregular_timestamps(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n1,2\n2,3\n4,4\n")
    with pytest.raises(ValueError, match="is irregular: the step before row 3"):
        gh.load_series(path, time_column="t")


def test_load_series_irregular_tiny_steps():
    # Steps far below numpy's default atol of 1e-8 must still count as unequal.
    frame = pd.DataFrame({"t": [0.0, 1e-9, 2.5e-9], "value": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="is irregular: the step before row 2"):
        gh.load_series(frame, time_column="t")


def test_load_series_irregular_dates(tmp_path):
    text = "date,value\n2000-01-01,1\n2000-01-08,2\n2000-01-22,3\n"
    with pytest.raises(ValueError, match="is irregular: the step before row 2"):
        gh.load_series(write_csv(tmp_path, text), time_column="date")


def test_load_series_irregular_names_both_steps(tmp_path):
    text = "date,value\n2000-01-01,1\n2000-01-08,2\n2000-01-22,3\n"
    with pytest.raises(ValueError) as error:
        gh.load_series(write_csv(tmp_path, text), time_column="date")
    message = str(error.value)
    assert "the step before row 2 is 14 days" in message
    assert "the first step is 7 days" in message
    assert "leave out time_column to skip this check" in message


@pytest.mark.parametrize("dates", [
    ["2000-01-01", "2000-02-01", "2000-03-01", "2000-04-01"],  # month starts
    ["2000-01", "2000-02", "2000-03", "2000-04"],
    ["2000-01-31", "2000-02-29", "2000-03-31", "2000-04-30"],  # month ends
    ["2000-01-01", "2000-04-01", "2000-07-01", "2000-10-01"],  # quarters
    ["2000-01-01", "2001-01-01", "2002-01-01", "2003-01-01"],  # 2000 is a leap year
    ["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"],  # business days
], ids=["month starts", "year-month", "month ends", "quarters", "years",
        "business days"])
def test_load_series_calendar_steps_accepted(tmp_path, dates):
    text = "date,value\n" + "".join(f"{d},{i}\n" for i, d in enumerate(dates))
    series = gh.load_series(write_csv(tmp_path, text), time_column="date")
    assert list(series) == [0.0, 1.0, 2.0, 3.0]
    assert list(series.index) == list(pd.to_datetime(dates))


def test_load_series_datetime_index_checked():
    index = pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-02", "2020-01-04"])
    with pytest.raises(ValueError, match="time index 'index' is not sorted: row 1"):
        gh.load_series(pd.Series([1.0, 2.0, 3.0, 4.0], index=index))


def test_load_series_datetime_index_duplicated():
    frame = pd.DataFrame({
        "date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-02"]),
        "value": [1.0, 2.0, 3.0],
    }).set_index("date")
    with pytest.raises(ValueError, match="time index 'date' has 1 duplicated"):
        gh.load_series(frame)


def test_load_series_datetime_index_kept():
    index = pd.date_range("2020-01-01", periods=4, freq="D", name="date")
    series = gh.load_series(pd.Series([1.0, 3.0, 2.0, 4.0], index=index))
    assert series.index.equals(index)


@pytest.mark.parametrize("source", [None, 5, 2.5])
def test_load_series_unsupported_source_type(source):
    with pytest.raises(TypeError, match="expected a CSV path, a DataFrame, a Series"):
        gh.load_series(source)


def test_load_series_many_missing_rows_shortened():
    values = [1.0] + [np.nan] * 7 + [2.0]
    with pytest.raises(ValueError, match=r"7 missing values, at rows \[1, 2, 3, 4, 5, ...\]"):
        gh.load_series(values)


def test_load_series_few_missing_rows_listed_whole(tmp_path):
    path = write_csv(tmp_path, "value\n1.0\n\n3.0\nNaN\n5.0\n")
    with pytest.raises(ValueError) as error:
        gh.load_series(path)
    assert "at rows [1, 3]:" in str(error.value)


def test_load_series_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("value\n1.5\n2.5\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text .*save it as UTF-8"):
        gh.load_series(path)


def test_load_series_mixed_time_zones(tmp_path):
    text = ("date,value\n2020-01-01T00:00+00:00,1\n2020-01-02T00:00+01:00,2\n"
            "2020-01-03T00:00+00:00,3\n")
    with pytest.raises(ValueError, match="could not be read as dates .*same time zone"):
        gh.load_series(write_csv(tmp_path, text), time_column="date")


def test_load_series_invalid_date(tmp_path):
    text = "date,value\n2000-01-01,1\nnot a date,2\n2000-01-15,3\n"
    with pytest.raises(ValueError, match="not a date or number at row 1"):
        gh.load_series(write_csv(tmp_path, text), time_column="date")


def test_load_series_missing_numeric_timestamp(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1\n1,2\n,3\n3,4\n")
    with pytest.raises(ValueError, match="1 missing timestamps, the first at row 2"):
        gh.load_series(path, time_column="t")


def test_load_series_constant_series(tmp_path):
    path = write_csv(tmp_path, "value\n2.0\n2.0\n2.0\n")
    with pytest.raises(ValueError, match=r"is constant \(2.0\)"):
        gh.load_series(path)


def test_load_series_single_value():
    with pytest.raises(ValueError, match="has 1 values; need at least 2"):
        gh.load_series([1.0])


def test_load_series_two_value_columns_need_column(tmp_path):
    path = write_csv(tmp_path, "a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"found \['a', 'b'\]: pass column=NAME"):
        gh.load_series(path)


def test_load_series_two_column_array():
    with pytest.raises(ValueError, match=r"1-D array of values, got shape \(10, 2\)"):
        gh.load_series(np.zeros((10, 2)))


# ---------------------------------------------------------------------------
# split_by_time
# ---------------------------------------------------------------------------


def test_split_sizes_and_order():
    series = pd.Series(np.arange(1000.0), index=np.arange(1000) * 0.5)
    train, validation, test = gh.split_by_time(series, context_length=42, horizon=10)
    assert (len(train), len(validation), len(test)) == (700, 150, 150)
    assert train.index[-1] < validation.index[0]
    assert validation.index[-1] < test.index[0]


def test_split_parts_contiguous():
    series = pd.Series(np.arange(101.0))
    parts = gh.split_by_time(series, 0.2, 0.1, context_length=3, horizon=2)
    pd.testing.assert_series_equal(pd.concat(parts), series)
    for part in parts:
        assert np.all(np.diff(part.to_numpy()) == 1.0)


def test_split_accepts_array():
    train, validation, test = gh.split_by_time(np.arange(20.0))
    assert (len(train), len(validation), len(test)) == (14, 3, 3)


def test_split_rejects_dataframe():
    frame = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0)})
    with pytest.raises(TypeError, match=r"got a DataFrame with columns \['a', 'b'\]"):
        gh.split_by_time(frame)


@pytest.mark.parametrize("fraction", ["0.1", None, True])
def test_split_fraction_not_number(fraction):
    with pytest.raises(TypeError, match="validation_fraction must be a number"):
        gh.split_by_time(np.arange(100.0), validation_fraction=fraction)


def test_split_too_short_says_needed_and_given():
    with pytest.raises(ValueError) as raised:
        gh.split_by_time(np.arange(50.0), context_length=42, horizon=10)
    message = str(raised.value)
    assert "series too short: 50 values" in message
    assert "context_length + horizon = 52" in message
    # 52 / 0.15 rounded up: the smallest part gets at least 52 values.
    assert "about 347 values are needed" in message


def test_split_needed_length_is_enough():
    parts = gh.split_by_time(np.arange(347.0), context_length=42, horizon=10)
    assert min(len(part) for part in parts) >= 52


@pytest.mark.parametrize(
    "fractions, phrase",
    [
        ((0.0, 0.15), "validation_fraction must be between 0 and 1"),
        ((0.15, 1.0), "test_fraction must be between 0 and 1"),
        ((0.5, 0.5), "leaves no training data"),
    ],
)
def test_split_invalid_fractions(fractions, phrase):
    with pytest.raises(ValueError, match=phrase):
        gh.split_by_time(np.arange(100.0), *fractions)


# ---------------------------------------------------------------------------
# StandardScaler
# ---------------------------------------------------------------------------


def test_scaler_fitted_on_train_only():
    # A trend makes the train part's statistics differ from the whole series'.
    series = np.arange(1000.0) + np.sin(np.arange(1000.0))
    train, _, _ = gh.split_by_time(series)
    scaler = gh.StandardScaler().fit(train)
    assert scaler.mean == pytest.approx(np.mean(train.to_numpy()), rel=1e-12)
    assert scaler.std == pytest.approx(np.std(train.to_numpy()), rel=1e-12)
    assert scaler.mean != pytest.approx(np.mean(series), rel=1e-3)
    assert scaler.std != pytest.approx(np.std(series), rel=1e-3)


def test_scaler_transform_standardises():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    scaled = gh.StandardScaler().fit(train).transform(train)
    assert np.mean(scaled) == pytest.approx(0.0, abs=1e-12)
    assert np.std(scaled) == pytest.approx(1.0, rel=1e-12)


def test_scaler_inverse_round_trip():
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 3.0, size=200)
    scaler = gh.StandardScaler().fit(values[:100])
    np.testing.assert_allclose(
        scaler.inverse_transform(scaler.transform(values)), values, rtol=1e-12
    )


def test_scaler_inverse_round_trip_tensor():
    scaler = gh.StandardScaler().fit([1.0, 2.0, 4.0])
    values = torch.tensor([[0.5, 3.0], [7.0, -1.0]])
    round_trip = scaler.inverse_transform(scaler.transform(values))
    assert isinstance(round_trip, torch.Tensor)
    torch.testing.assert_close(round_trip, values)


def test_scaler_constant_train_rejected():
    with pytest.raises(ValueError, match="training values are constant"):
        gh.StandardScaler().fit(np.full(10, 3.0))


def test_scaler_nan_train_rejected():
    with pytest.raises(ValueError, match="1 training values are NaN or infinite"):
        gh.StandardScaler().fit([1.0, np.nan, 2.0])


def test_scaler_empty_train_rejected():
    with pytest.raises(ValueError, match="training values are empty"):
        gh.StandardScaler().fit([])


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_scaler_unfitted_rejected(method):
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        getattr(gh.StandardScaler(), method)(np.zeros(3))


def test_scaler_unfitted_to_dict_rejected():
    with pytest.raises(RuntimeError, match="not fitted"):
        gh.StandardScaler().to_dict()


def test_scaler_half_configured_rejected():
    with pytest.raises(RuntimeError, match="not fitted"):
        gh.StandardScaler(mean=1.0).transform(np.zeros(3))


def test_scaler_to_dict_round_trip():
    scaler = gh.StandardScaler().fit([1.0, 2.0, 4.0])
    parameters = json.loads(json.dumps(scaler.to_dict()))
    assert parameters == {"mean": scaler.mean, "std": scaler.std}
    restored = gh.StandardScaler(**parameters)
    values = np.array([0.0, 3.0, 10.0])
    np.testing.assert_array_equal(restored.transform(values), scaler.transform(values))


# ---------------------------------------------------------------------------
# make_windows
# ---------------------------------------------------------------------------


def test_windows_indices():
    values = np.arange(20.0)
    contexts, futures = gh.make_windows(values, context_length=4, horizon=3)
    for k in range(len(contexts)):
        np.testing.assert_array_equal(contexts[k].numpy(), values[k:k + 4])
        np.testing.assert_array_equal(futures[k].numpy(), values[k + 4:k + 7])


def test_windows_count_shape_dtype():
    contexts, futures = gh.make_windows(np.arange(100.0), 42, 10)
    assert contexts.shape == (49, 42)
    assert futures.shape == (49, 10)
    assert contexts.dtype == torch.float32
    assert futures.dtype == torch.float32


def test_windows_single_window():
    contexts, futures = gh.make_windows(np.arange(7.0), 4, 3)
    assert contexts.shape == (1, 4)
    assert futures.shape == (1, 3)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_windows_device(device):
    contexts, futures = gh.make_windows(np.arange(10.0), 3, 2, device=device)
    assert contexts.device == torch.device("cpu")
    assert futures.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_windows_cuda_device():
    contexts, futures = gh.make_windows(np.arange(10.0), 3, 2, device="cuda")
    assert contexts.device.type == "cuda"
    assert futures.device.type == "cuda"


def test_windows_never_cross_split_boundary():
    values = np.arange(400.0)
    parts = gh.split_by_time(values, context_length=5, horizon=3)
    start = 0
    for part in parts:
        contexts, futures = gh.make_windows(part, 5, 3)
        end = start + len(part)
        assert len(contexts) == len(part) - 5 - 3 + 1
        assert contexts.min() == start
        assert futures.max() == end - 1
        start = end


@pytest.mark.parametrize("name", ["context_length", "horizon"])
@pytest.mark.parametrize(
    "value, error",
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (4.0, TypeError),
     (True, TypeError), ("4", TypeError), (None, TypeError)],
)
def test_windows_invalid_lengths(name, value, error):
    lengths = {"context_length": 4, "horizon": 3, name: value}
    with pytest.raises(error, match=f"{name} must be a positive integer"):
        gh.make_windows(np.arange(20.0), **lengths)


@pytest.mark.parametrize("name", ["context_length", "horizon"])
@pytest.mark.parametrize("value, error", [(0, ValueError), (True, TypeError)])
def test_split_invalid_lengths(name, value, error):
    lengths = {"context_length": 4, "horizon": 3, name: value}
    with pytest.raises(error, match=f"{name} must be a positive integer"):
        gh.split_by_time(np.arange(200.0), **lengths)


def test_windows_numpy_integer_lengths():
    contexts, futures = gh.make_windows(np.arange(10.0), np.int64(3), np.int32(2))
    assert contexts.shape == (6, 3)
    assert futures.shape == (6, 2)


def test_windows_two_dimensional_values():
    with pytest.raises(ValueError, match=r"1-D values\), got shape \(20, 2\)"):
        gh.make_windows(np.zeros((20, 2)), 4, 3)


def test_windows_too_few_values():
    with pytest.raises(ValueError, match="6 values are too few.*= 7"):
        gh.make_windows(np.arange(6.0), 4, 3)


def test_anchor_windows_shift_by_last_context_value():
    contexts, futures = gh.make_windows(np.arange(20.0) + 300, 5, 3)
    shifted_contexts, shifted_futures, anchors = gh.anchor_windows(contexts, futures)
    assert anchors.shape == (len(contexts), 1)
    assert torch.equal(anchors[:, 0], contexts[:, -1])
    assert torch.all(shifted_contexts[:, -1] == 0)
    assert torch.equal(shifted_futures + anchors, futures)
    # The shift is the same for every window of a linear trend.
    assert torch.equal(shifted_futures, shifted_futures[:1].expand_as(shifted_futures))
