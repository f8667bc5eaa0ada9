"""Fake mouth-crop clips for the video tests: small MP4s (PyAV, mpeg4), frame folders and WAVs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf


def frames_for(n: int, size: int = 96, seed: int = 0) -> np.ndarray:
    """``[n, size, size]`` uint8 frames: a bright disc ("mouth") whose radius follows a seeded random walk."""
    rng = np.random.default_rng(seed)
    radius = np.clip(12 + np.cumsum(rng.integers(-2, 3, n)), 4, size // 3)
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - size / 2, xx - size / 2)
    return np.stack([np.where(dist < r, 220, 40) for r in radius]).astype(np.uint8)


def write_video(path: Path, n: int, size: int = 96, fps: int = 25, seed: int = 0, audio: bool = False) -> Path:
    """An MP4 of ``n`` frames at ``fps`` (optionally with a 16 kHz AAC track as long as the video)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        track = container.add_stream("aac", rate=16_000) if audio else None
        for img in frames_for(n, size, seed):
            frame = av.VideoFrame.from_ndarray(np.repeat(img[..., None], 3, axis=2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if track is not None:
            rng = np.random.default_rng(seed)
            wave = (rng.standard_normal((1, n * 640)) * 3000).astype(np.int16)
            chunk = av.AudioFrame.from_ndarray(wave, format="s16", layout="mono")
            chunk.sample_rate = 16_000
            for packet in [*track.encode(chunk), *track.encode()]:
                container.mux(packet)
    return path


def write_frame_folder(folder: Path, n: int, size: int = 96, seed: int = 0) -> Path:
    """``n`` PNG frames named ``frame_1.png`` … ``frame_N.png`` (so name order needs numeric sorting)."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames_for(n, size, seed), start=1):
        with av.open(str(folder / f"frame_{i}.png"), "w", format="image2") as container:
            stream = container.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = size, size, "gray"
            for packet in [*stream.encode(av.VideoFrame.from_ndarray(img, format="gray")), *stream.encode()]:
                container.mux(packet)
    return folder


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.random.default_rng(seed).standard_normal(int(seconds * 16_000)).astype(np.float32) * 0.1
    sf.write(str(path), wave, 16_000)
    return path


WORDS = ("open", "close", "smile", "round")


def video_corpus(root: Path, count: int = 4, audio_visual: bool = False) -> Path:
    """A manifest of ``count`` short clips (10–16 frames) whose target word follows the disc's seed."""
    lines = []
    for i in range(count):
        video = write_video(root / f"clip{i}.mp4", 10 + 2 * (i % 4), seed=i % len(WORDS))
        line = {"key": f"clip{i}", "source": video.name, "target": WORDS[i % len(WORDS)]}
        if audio_visual:
            line = {**line, "source": write_wav(root / f"clip{i}.wav", (10 + 2 * (i % 4)) / 25, seed=i).name, "video": video.name}
        lines.append(line)
    manifest = root / "clips.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return manifest
