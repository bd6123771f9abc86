#!/usr/bin/env bash
# Content photos for meta-training, from Debian's wallpaper packages (offline: Debian's mirror only).
#   bash benchmarks/get_photos.sh [DEST]      (default: runs/photos; git-ignored, never committed)
# Downloads the .deb files with `apt-get download` (nothing is installed), unpacks them in a temporary folder
# and copies the photographs (not the abstract or drawn wallpapers) into DEST, plus the embedded scikit-image
# photos of metastyle_jax.data's training split, every one downscaled so its longer side is at most 1024 px
# (fast to decode at training sizes). Writes DEST/SOURCES.txt naming each file's package.
set -euo pipefail
DEST="${1:-runs/photos}"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"
# package: the photographs in it (by path under usr/share/backgrounds)
declare -A PHOTOS=(
  [lomiri-wallpapers-16.04]="Bridge_by_Sander_Klootwijk.jpg Dragonfly_by_Bolly.jpg Wine_by_Jakkub_Mede.jpg
    aitzgorri_by_Aitzol_Berasategi.jpg friends_by_Aitzol_Berasategi.jpg life_by_Aitzol_Berasategi.jpg
    picosdeeuropa_by_Aitzol_Berasategi.jpg seeding_by_Clements_Engelhardt.jpg sunset_by_Aitzol_Berasategi.jpg
    umang_by_Abhishek_Mudgal.jpg greentock_by_Peter_Nerlich.jpg free_by_Peter_Nerlich.jpg"
  [lomiri-wallpapers-20.04]="Kleiber_by_Lukas_Baubkus.jpg Infinite-Sea_by_Aury88.jpg"
  [mate-backgrounds]="mate/nature/Aqua.jpg mate/nature/Blinds.jpg mate/nature/Dune.jpg mate/nature/FreshFlower.jpg
    mate/nature/Garden.jpg mate/nature/GreenMeadow.jpg mate/nature/LadyBird.jpg mate/nature/RainDrops.jpg
    mate/nature/Storm.jpg mate/nature/TwoWings.jpg mate/nature/Wood.jpg mate/nature/YellowFlower.jpg"
  # KDE Plasma's photographs (under usr/share/wallpapers, one folder each; saved as FOLDER.jpg)
  [plasma-workspace-wallpapers]="../wallpapers/BytheWater ../wallpapers/ColdRipple ../wallpapers/DarkestHour
    ../wallpapers/EveningGlow ../wallpapers/FallenLeaf ../wallpapers/Grey ../wallpapers/Kite
    ../wallpapers/OneStandsOut ../wallpapers/Path ../wallpapers/summer_1am ../wallpapers/ColorfulCups"
)
: > "$DEST/SOURCES.txt"
for pkg in "${!PHOTOS[@]}"; do
  (cd "$TMP" && apt-get download -q "$pkg" >/dev/null 2>&1) || { echo "cannot download $pkg with apt-get: skipped"; continue; }
  dpkg -x "$TMP"/"$pkg"_*.deb "$TMP/$pkg" && mkdir -p "$TMP/$pkg/usr/share/backgrounds"
  for f in ${PHOTOS[$pkg]}; do
    src="$TMP/$pkg/usr/share/backgrounds/$f" name="$(basename "$f")"
    if [ -d "$src" ]; then  # a Plasma wallpaper folder: its 1920x1080 image, else its largest
      name="$name.jpg"
      f="$f/contents/images/$(ls "$src/contents/images" | grep -qx 1920x1080.jpg && echo 1920x1080.jpg || ls -S "$src/contents/images" | head -1)"
      src="$TMP/$pkg/usr/share/backgrounds/$f"
    fi
    [ -f "$src" ] || { echo "$pkg has no $f: skipped"; continue; }
    cp "$src" "$DEST/$name"
    echo "$name  Debian package $pkg ($(dpkg-deb -f "$TMP"/"$pkg"_*.deb Version)), /usr/share/backgrounds/$f" >> "$DEST/SOURCES.txt"
  done
done
python - "$DEST" <<'PY'
import sys
from pathlib import Path
from PIL import Image
from metastyle_jax import data, images
dest = Path(sys.argv[1])
for path in sorted(dest.glob("*.jpg")):
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max(im.size) > 1024:
            im.thumbnail((1024, 1024), Image.LANCZOS)
        im.save(path, quality=95)
for name in data.EMBEDDED_PHOTOS:
    if name not in data.EMBEDDED_VAL_PHOTOS:
        images.save_image(dest / f"skimage_{name}.png", images.as_float_rgb(data.skimage_image(name)))
        with open(dest / "SOURCES.txt", "a") as f:
            f.write(f"skimage_{name}.png  scikit-image data.{name}\n")
PY
echo "$(ls "$DEST" | grep -vc SOURCES.txt) photos in $DEST"
