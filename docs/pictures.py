"""The README's animation: a video from `pacer eval --video`, made into a small looping GIF (run by `make pictures`).

    python docs/pictures.py VIDEO.mp4 OUT.gif [--width 300] [--every 2]

Every `--every`-th frame, scaled to `--width` pixels, played at the video's speed. Needs the video extra (imageio)
and Pillow (which matplotlib, the plot extra, installs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=300)
    parser.add_argument("--every", type=int, default=2)
    args = parser.parse_args()
    if args.every < 1 or args.width < 1:
        parser.error("--every and --width must be >= 1")
    reader: Any = imageio.get_reader(args.video)  # an iterator of frames (its stubs say otherwise)
    fps = reader.get_meta_data()["fps"]
    frames = []
    for index, frame in enumerate(reader):
        if index % args.every == 0:
            image = Image.fromarray(frame)
            height = round(image.height * args.width / image.width)
            frames.append(image.resize((args.width, height), Image.Resampling.LANCZOS))
    reader.close()
    if not frames:
        parser.error(f"{args.video} has no frames")
    # one palette for every frame (from the middle one): no flicker, and the GIF compresses well
    palette = frames[len(frames) // 2].quantize(colors=32)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(args.out, save_all=True, append_images=frames[1:], duration=round(1000 * args.every / fps),
                   loop=0, optimize=True)
    print(f"wrote {args.out}: {len(frames)} frames, {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
