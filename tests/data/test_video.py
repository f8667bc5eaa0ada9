"""Video loading: mouth frames from files and frame folders, the frame-rate check, audio-visual packing,
durations, the dataset/collator path for video records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fake_video import frames_for, write_frame_folder, write_video, write_wav

from slamkit.data.collate import Collator, Example
from slamkit.data.dataset import SpeechDataset, record_durations
from slamkit.data.manifest import Record
from slamkit.data.video import (
    AUDIO_RATE,
    CROP,
    VideoError,
    frame_files,
    load_frames,
    load_signal,
    load_track_audio,
    signal_duration,
    video_info,
)

pytest.importorskip("av")


def test_video_file_gives_center_cropped_gray_frames_in_unit_range(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.mp4", 12, size=96, seed=3)
    assert video_info(path) == (25.0, 12)
    frames = load_frames(path, 25)
    assert frames.shape == (12, CROP, CROP) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    # lossy codec: compare with the drawn frames' centre, loosely
    expected = frames_for(12, 96, seed=3)[:, 4:92, 4:92] / 255.0
    assert np.abs(frames - expected).mean() < 0.05
    # a crop in seconds becomes whole frames
    assert load_frames(path, 25, offset=0.2, duration=0.16).shape[0] == 4


def test_frame_folder_reads_in_numeric_order_and_checks_a_stated_rate(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "frames", 11, seed=1)
    assert [p.name for p in frame_files(folder)][:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    frames = load_frames(folder, 25)
    expected = frames_for(11, 96, seed=1)[:, 4:92, 4:92] / 255.0
    np.testing.assert_allclose(frames, expected, atol=1e-6)  # PNG is lossless: order and crop are exact
    with pytest.raises(VideoError, match=r"frames.*video at 30 fps, but the encoder reads 25 frames per second"):
        load_frames(folder, 25, folder_fps=30)


def test_wrong_frame_rate_small_frames_and_missing_files_are_named(tmp_path: Path) -> None:
    fast = write_video(tmp_path / "fast.mp4", 6, fps=30)
    with pytest.raises(VideoError, match=r"fast.mp4: video at 30 fps, but the encoder reads 25 frames per second"):
        load_frames(fast, 25)
    with pytest.raises(VideoError, match=r"fast.mp4: a video clip \(file or frame folder\), but the encoder reads audio at 16000 Hz"):
        load_frames(fast, 16_000)
    small = write_video(tmp_path / "small.mp4", 4, size=64)
    with pytest.raises(VideoError, match=r"small.mp4: frames of 64x64 pixels are smaller than the 88x88 mouth crop"):
        load_frames(small, 25)
    with pytest.raises(VideoError, match="missing.mp4: video not found"):
        load_frames(tmp_path / "missing.mp4", 25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="broken.mp4: unreadable video"):
        load_frames(broken, 25)


def test_records_give_audio_video_or_audio_visual_signals(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 10, audio=True)
    wav = write_wav(tmp_path / "v.wav", 0.3)  # 4800 samples: cut to 10 frames x 640 = 6400 -> zero-padded
    manifest = str(tmp_path / "m.jsonl")
    only_video = Record("a", str(video), "x", manifest=manifest, line=1)
    assert load_signal(only_video, 25).shape == (10, CROP * CROP)
    av_rec = Record("b", str(wav), "x", extra={"video": "v.mp4"}, manifest=manifest, line=2)  # relative to the manifest
    signal = load_signal(av_rec, 25)
    assert signal.shape == (10, CROP * CROP + AUDIO_RATE // 25)
    audio = signal[:, CROP * CROP:].reshape(-1)
    assert np.abs(audio[:4800]).sum() > 0 and not audio[4800:].any()
    # the audio of an audio-visual clip may be the video's own track
    track = load_track_audio(video)
    assert abs(len(track) - 6400) < 2048 and np.abs(track).max() > 0
    assert load_signal(Record("c", str(video), "x", extra={"video": str(video)}), 25).shape == (10, CROP * CROP + 640)
    assert load_signal(Record("d", str(wav), "x"), 16_000).shape == (4800,)
    assert signal_duration(only_video) == pytest.approx(0.4) and signal_duration(av_rec) == pytest.approx(0.4)
    with pytest.raises(VideoError, match=r"m.jsonl:3: field 'video' must be a non-empty path"):
        load_signal(Record("e", str(wav), "x", extra={"video": 3}, manifest=manifest, line=3), 25)


def test_dataset_and_collator_carry_video_frames(tmp_path: Path) -> None:
    clips = [write_video(tmp_path / f"c{i}.mp4", n, seed=i) for i, n in enumerate((8, 13))]
    records = [Record(f"k{i}", str(p), "word", manifest=str(tmp_path / "m.jsonl"), line=i + 1) for i, p in enumerate(clips)]
    records.append(Record("bad", str(tmp_path / "gone.mp4"), "word", manifest=str(tmp_path / "m.jsonl"), line=3))
    durations, skips = record_durations(records)
    assert durations[:2] == [pytest.approx(8 / 25), pytest.approx(13 / 25)] and durations[2] is None
    assert len(skips) == 1 and skips[0].message.startswith(str(tmp_path / "m.jsonl") + ":3")
    audio_id = 99
    dataset = SpeechDataset(records, 25, lambda text: [1, audio_id, 2], lambda text: [5, 6], lambda rec: "p")
    examples = [dataset[0], dataset[1], dataset[2]]
    assert examples[0].audio.shape == (8, CROP * CROP) and examples[0].cache_key and examples[1].cache_key != examples[0].cache_key
    batch = Collator(audio_id, 0, lambda frames: frames // 2)(examples)
    assert batch.audio.shape == (2, 13, CROP * CROP) and batch.audio_lengths.tolist() == [8, 13] and batch.skipped == 1
    assert not batch.audio[0, 8:].any() and torch.equal(batch.audio[1], torch.from_numpy(examples[1].audio))
    assert (batch.input_ids == audio_id).sum(dim=1).tolist() == [4, 6]


def test_collator_refuses_audio_and_video_in_one_batch() -> None:
    ex = [Example("a", np.zeros(100, np.float32), [7], [1], "t"), Example("v", np.zeros((3, 4), np.float32), [7], [1], "t")]
    with pytest.raises(ValueError, match="audio, video and audio-visual records cannot be mixed"):
        Collator(7, 0, lambda n: 1)(ex)
