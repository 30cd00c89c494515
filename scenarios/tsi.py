"""Toyota Smarthome Images (TSI): one image per trimmed Smarthome clip (LoRSU paper, Panos et al.,
section 5.1, appendix D and table 6; official code `src/clip_ft/datasets/toyota_smarthome.py`).

Appendix D: "we discretized each video clip into 2 frames per second and then selected the frame
in the middle of the total time duration of the video clip". Made precise here (`middle_frame`):

* the clip's duration D is the span of its video frames: last presentation time minus the first,
  plus one frame period (1 / the stream's average frame rate);
* discretising at 2 fps samples the times t_k = k / 2 s, k = 0, 1, ..., n - 1, with n = ceil(2 D)
  (every sample time before the end of the clip);
* the middle of that list is sample k = n // 2 (the later one when n is even), at t = (n // 2) / 2;
* the image is the source frame on screen at t: the last frame whose presentation time (counted
  from the first frame) is <= t.

All arithmetic is exact (fractions), so the choice does not depend on float rounding.

Clips are named `<Action>_<subject>_<recording>_<video>_<camera>.mp4`. Actions map to the 22
captions of table 6 (some share a caption, four ambiguous ones are dropped), and subjects give the
Smarthome cross-subject split.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# Table 6: action -> caption. Prompt: "The person in this image is {caption}".
ACTION_CAPTIONS: dict[str, str] = {
    "Cook.Cleandishes": "washing dishes",
    "Cook.Cleanup": "cleaning up",
    "Cook.Cut": "cutting food",
    "Cook.Stir": "stirring the pot",
    "Cutbread": "cutting bread",
    "Drink.Frombottle": "holding a bottle",
    "Pour.Frombottle": "holding a bottle",
    "Drink.Fromcan": "holding a can",
    "Pour.Fromcan": "holding a can",
    "Drink.Fromcup": "holding a cup",
    "Drink.Fromglass": "holding a glass",
    "Eat.Attable": "eating",
    "Enter": "walking",
    "Leave": "walking",
    "Walk": "walking",
    "Laydown": "lying down",
    "Makecoffee.Pourgrains": "using a white coffee machine",
    "Makecoffee.Pourwater": "using a white coffee machine",
    "Maketea.Boilwater": "boiling water in a black kettle",
    "Maketea.Insertteabag": "making tea",
    "Pour.Fromkettle": "holding a black kettle",
    "Readbook": "reading a book",
    "Sitdown": "sitting down",
    "Uselaptop": "using a laptop",
    "Usetablet": "using a tablet",
    "Usetelephone": "using a cordless phone",
    "WatchTV": "watching TV",
}
# Table 6 marks these ambiguous; they are not part of TSI.
DROPPED_ACTIONS = ("Cook.Usestove", "Eat.Snack", "Getup", "Takepills")

# Smarthome cross-subject protocol.
TRAIN_SUBJECTS = ("p03", "p04", "p06", "p07", "p09", "p12", "p13", "p15", "p17", "p19", "p25")
ALL_SUBJECTS = ("p02", "p03", "p04", "p06", "p07", "p09", "p10", "p11", "p12", "p13", "p14",
                "p15", "p16", "p17", "p18", "p19", "p20", "p25")

CLIP_NAME = re.compile(r"^(?P<action>[A-Za-z][A-Za-z.]*)_(?P<subject>p\d+)_(?P<recording>r\d+)_"
                       r"(?P<video>v\d+)_(?P<camera>c\d+)$")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")

SAMPLE_RATE = 2  # frames per second (appendix D)


@dataclass(frozen=True)
class Clip:
    path: Path
    action: str
    subject: str

    @property
    def stem(self) -> str:
        return self.path.stem


def parse_clip_name(path: Path) -> Clip | None:
    match = CLIP_NAME.match(path.stem)
    if not match:
        return None
    return Clip(path, match["action"], match["subject"])


def split_of(subject: str) -> str | None:
    if subject in TRAIN_SUBJECTS:
        return "train"
    return "test" if subject in ALL_SUBJECTS else None


def middle_sample_time(duration: Fraction) -> Fraction:
    """Time of the middle sample after discretising a clip of `duration` seconds at 2 fps."""
    if duration <= 0:
        raise ValueError("a clip needs a positive duration")
    n = math.ceil(duration * SAMPLE_RATE)
    return Fraction(n // 2, SAMPLE_RATE)


def middle_frame(frame_times: list[Fraction], frame_period: Fraction) -> int:
    """Index (in presentation order) of the frame the module docstring defines.

    `frame_times` are presentation times in seconds, sorted; `frame_period` is 1 / frame rate.
    """
    if not frame_times:
        raise ValueError("a clip without frames")
    start = frame_times[0]
    duration = frame_times[-1] - start + frame_period
    t = middle_sample_time(duration)
    index = 0
    for i, time in enumerate(frame_times):
        if time - start <= t:
            index = i
        else:
            break
    return index


def extract_middle_frame(path: Path):
    """(PIL image, frame index, frame count) of the clip's middle frame, decoded with PyAV.

    Timestamps come from demuxing alone (no decoding); then decoding runs from the start to the
    chosen frame, which is deterministic whatever the codec's GOP structure is.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base)
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        rate = stream.average_rate or stream.guessed_rate
        if not pts or not rate:
            raise ValueError("no video frames with timestamps")
        index = middle_frame([p * time_base for p in pts], 1 / Fraction(rate))
        wanted = pts[index]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # frame-exact output must not depend on threading
        for frame in container.decode(stream):
            if frame.pts == wanted:
                return frame.to_image(), index, len(pts)
    raise ValueError(f"frame with pts {wanted} not decoded")
