"""Dataset kinds of the ImageNet family: ImageNet with its training split, its distribution
shifts, ImageNet-100, and the DALL-E images split into a stream of their own.

* `imagenet-1k`: `train/<wnid>/` and `val/<wnid>/` (the `test` split); `class_names`, when a
  declaration gives them, are the wnids of a subset (ImageNet-100).
* `imagenet-v2`: ImageNetV2 matched-frequency, `<class index 0..999>/` folders (Recht et al.,
  ICML 2019).
* `imagenet-a`, `imagenet-r`, `imagenet-sketch`: one `<wnid>/` folder per class (Hendrycks et
  al., CVPR 2021 and ICCV 2021; Wang et al., NeurIPS 2019).
* `objectnet`: ObjectNet 1.0's `images/<folder>/` with its `mappings/` (Barbu et al., NeurIPS
  2019), evaluated on its 113 classes that overlap ImageNet.
* `dalle-split`: the `dalle` images (LoRSU paper, appendix A.2), 20 train and 10 test per
  caption by a fixed rule (`DalleSplitKind`).

Every ImageNet-derived set is read in ImageNet's class space: a class is an ImageNet index (a
wnid's rank among the 1000 sorted wnids, the order of open_clip's class names), and its name is
open_clip's name for that index, so a subset (-A, -R, ObjectNet, ImageNet-100) is evaluated with
exactly ImageNet's names for its classes, as the ImageNet-shift evaluations do (Radford et al.,
ICML 2021; Taori et al., NeurIPS 2020). Templates are the OpenAI 80 unless a declaration gives
its own. The wnids of a subset are its declaration's `class_names`.

The kinds register when this module is imported, like those of `loaders.py`. Neither torch nor
PIL is imported here: each method imports what it needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from clbench.errors import ConfigError, UserError
from clbench.names import closest
from clbench.scenarios.loaders import (
    DALLE_FLAGS,
    ROOT_FLAG,
    DatasetKind,
    Preparation,
    register_loader,
)

if TYPE_CHECKING:
    from clbench.scenarios.datasets import Listing
    from clbench.scenarios.integrity import PreparedIndex
    from clbench.scenarios.manifest_types import DatasetManifest

# The 1000 ILSVRC-2012 wnids, sorted: a class's ImageNet index is its position here (torchvision's
# ImageFolder order, which open_clip's IMAGENET_CLASSNAMES follow).
_WNID_TEXT = """
    n01440764 n01443537 n01484850 n01491361 n01494475 n01496331 n01498041 n01514668 n01514859 n01518878
    n01530575 n01531178 n01532829 n01534433 n01537544 n01558993 n01560419 n01580077 n01582220 n01592084
    n01601694 n01608432 n01614925 n01616318 n01622779 n01629819 n01630670 n01631663 n01632458 n01632777
    n01641577 n01644373 n01644900 n01664065 n01665541 n01667114 n01667778 n01669191 n01675722 n01677366
    n01682714 n01685808 n01687978 n01688243 n01689811 n01692333 n01693334 n01694178 n01695060 n01697457
    n01698640 n01704323 n01728572 n01728920 n01729322 n01729977 n01734418 n01735189 n01737021 n01739381
    n01740131 n01742172 n01744401 n01748264 n01749939 n01751748 n01753488 n01755581 n01756291 n01768244
    n01770081 n01770393 n01773157 n01773549 n01773797 n01774384 n01774750 n01775062 n01776313 n01784675
    n01795545 n01796340 n01797886 n01798484 n01806143 n01806567 n01807496 n01817953 n01818515 n01819313
    n01820546 n01824575 n01828970 n01829413 n01833805 n01843065 n01843383 n01847000 n01855032 n01855672
    n01860187 n01871265 n01872401 n01873310 n01877812 n01882714 n01883070 n01910747 n01914609 n01917289
    n01924916 n01930112 n01943899 n01944390 n01945685 n01950731 n01955084 n01968897 n01978287 n01978455
    n01980166 n01981276 n01983481 n01984695 n01985128 n01986214 n01990800 n02002556 n02002724 n02006656
    n02007558 n02009229 n02009912 n02011460 n02012849 n02013706 n02017213 n02018207 n02018795 n02025239
    n02027492 n02028035 n02033041 n02037110 n02051845 n02056570 n02058221 n02066245 n02071294 n02074367
    n02077923 n02085620 n02085782 n02085936 n02086079 n02086240 n02086646 n02086910 n02087046 n02087394
    n02088094 n02088238 n02088364 n02088466 n02088632 n02089078 n02089867 n02089973 n02090379 n02090622
    n02090721 n02091032 n02091134 n02091244 n02091467 n02091635 n02091831 n02092002 n02092339 n02093256
    n02093428 n02093647 n02093754 n02093859 n02093991 n02094114 n02094258 n02094433 n02095314 n02095570
    n02095889 n02096051 n02096177 n02096294 n02096437 n02096585 n02097047 n02097130 n02097209 n02097298
    n02097474 n02097658 n02098105 n02098286 n02098413 n02099267 n02099429 n02099601 n02099712 n02099849
    n02100236 n02100583 n02100735 n02100877 n02101006 n02101388 n02101556 n02102040 n02102177 n02102318
    n02102480 n02102973 n02104029 n02104365 n02105056 n02105162 n02105251 n02105412 n02105505 n02105641
    n02105855 n02106030 n02106166 n02106382 n02106550 n02106662 n02107142 n02107312 n02107574 n02107683
    n02107908 n02108000 n02108089 n02108422 n02108551 n02108915 n02109047 n02109525 n02109961 n02110063
    n02110185 n02110341 n02110627 n02110806 n02110958 n02111129 n02111277 n02111500 n02111889 n02112018
    n02112137 n02112350 n02112706 n02113023 n02113186 n02113624 n02113712 n02113799 n02113978 n02114367
    n02114548 n02114712 n02114855 n02115641 n02115913 n02116738 n02117135 n02119022 n02119789 n02120079
    n02120505 n02123045 n02123159 n02123394 n02123597 n02124075 n02125311 n02127052 n02128385 n02128757
    n02128925 n02129165 n02129604 n02130308 n02132136 n02133161 n02134084 n02134418 n02137549 n02138441
    n02165105 n02165456 n02167151 n02168699 n02169497 n02172182 n02174001 n02177972 n02190166 n02206856
    n02219486 n02226429 n02229544 n02231487 n02233338 n02236044 n02256656 n02259212 n02264363 n02268443
    n02268853 n02276258 n02277742 n02279972 n02280649 n02281406 n02281787 n02317335 n02319095 n02321529
    n02325366 n02326432 n02328150 n02342885 n02346627 n02356798 n02361337 n02363005 n02364673 n02389026
    n02391049 n02395406 n02396427 n02397096 n02398521 n02403003 n02408429 n02410509 n02412080 n02415577
    n02417914 n02422106 n02422699 n02423022 n02437312 n02437616 n02441942 n02442845 n02443114 n02443484
    n02444819 n02445715 n02447366 n02454379 n02457408 n02480495 n02480855 n02481823 n02483362 n02483708
    n02484975 n02486261 n02486410 n02487347 n02488291 n02488702 n02489166 n02490219 n02492035 n02492660
    n02493509 n02493793 n02494079 n02497673 n02500267 n02504013 n02504458 n02509815 n02510455 n02514041
    n02526121 n02536864 n02606052 n02607072 n02640242 n02641379 n02643566 n02655020 n02666196 n02667093
    n02669723 n02672831 n02676566 n02687172 n02690373 n02692877 n02699494 n02701002 n02704792 n02708093
    n02727426 n02730930 n02747177 n02749479 n02769748 n02776631 n02777292 n02782093 n02783161 n02786058
    n02787622 n02788148 n02790996 n02791124 n02791270 n02793495 n02794156 n02795169 n02797295 n02799071
    n02802426 n02804414 n02804610 n02807133 n02808304 n02808440 n02814533 n02814860 n02815834 n02817516
    n02823428 n02823750 n02825657 n02834397 n02835271 n02837789 n02840245 n02841315 n02843684 n02859443
    n02860847 n02865351 n02869837 n02870880 n02871525 n02877765 n02879718 n02883205 n02892201 n02892767
    n02894605 n02895154 n02906734 n02909870 n02910353 n02916936 n02917067 n02927161 n02930766 n02939185
    n02948072 n02950826 n02951358 n02951585 n02963159 n02965783 n02966193 n02966687 n02971356 n02974003
    n02977058 n02978881 n02979186 n02980441 n02981792 n02988304 n02992211 n02992529 n02999410 n03000134
    n03000247 n03000684 n03014705 n03016953 n03017168 n03018349 n03026506 n03028079 n03032252 n03041632
    n03042490 n03045698 n03047690 n03062245 n03063599 n03063689 n03065424 n03075370 n03085013 n03089624
    n03095699 n03100240 n03109150 n03110669 n03124043 n03124170 n03125729 n03126707 n03127747 n03127925
    n03131574 n03133878 n03134739 n03141823 n03146219 n03160309 n03179701 n03180011 n03187595 n03188531
    n03196217 n03197337 n03201208 n03207743 n03207941 n03208938 n03216828 n03218198 n03220513 n03223299
    n03240683 n03249569 n03250847 n03255030 n03259280 n03271574 n03272010 n03272562 n03290653 n03291819
    n03297495 n03314780 n03325584 n03337140 n03344393 n03345487 n03347037 n03355925 n03372029 n03376595
    n03379051 n03384352 n03388043 n03388183 n03388549 n03393912 n03394916 n03400231 n03404251 n03417042
    n03424325 n03425413 n03443371 n03444034 n03445777 n03445924 n03447447 n03447721 n03450230 n03452741
    n03457902 n03459775 n03461385 n03467068 n03476684 n03476991 n03478589 n03481172 n03482405 n03483316
    n03485407 n03485794 n03492542 n03494278 n03495258 n03496892 n03498962 n03527444 n03529860 n03530642
    n03532672 n03534580 n03535780 n03538406 n03544143 n03584254 n03584829 n03590841 n03594734 n03594945
    n03595614 n03598930 n03599486 n03602883 n03617480 n03623198 n03627232 n03630383 n03633091 n03637318
    n03642806 n03649909 n03657121 n03658185 n03661043 n03662601 n03666591 n03670208 n03673027 n03676483
    n03680355 n03690938 n03691459 n03692522 n03697007 n03706229 n03709823 n03710193 n03710637 n03710721
    n03717622 n03720891 n03721384 n03724870 n03729826 n03733131 n03733281 n03733805 n03742115 n03743016
    n03759954 n03761084 n03763968 n03764736 n03769881 n03770439 n03770679 n03773504 n03775071 n03775546
    n03776460 n03777568 n03777754 n03781244 n03782006 n03785016 n03786901 n03787032 n03788195 n03788365
    n03791053 n03792782 n03792972 n03793489 n03794056 n03796401 n03803284 n03804744 n03814639 n03814906
    n03825788 n03832673 n03837869 n03838899 n03840681 n03841143 n03843555 n03854065 n03857828 n03866082
    n03868242 n03868863 n03871628 n03873416 n03874293 n03874599 n03876231 n03877472 n03877845 n03884397
    n03887697 n03888257 n03888605 n03891251 n03891332 n03895866 n03899768 n03902125 n03903868 n03908618
    n03908714 n03916031 n03920288 n03924679 n03929660 n03929855 n03930313 n03930630 n03933933 n03935335
    n03937543 n03938244 n03942813 n03944341 n03947888 n03950228 n03954731 n03956157 n03958227 n03961711
    n03967562 n03970156 n03976467 n03976657 n03977966 n03980874 n03982430 n03983396 n03991062 n03992509
    n03995372 n03998194 n04004767 n04005630 n04008634 n04009552 n04019541 n04023962 n04026417 n04033901
    n04033995 n04037443 n04039381 n04040759 n04041544 n04044716 n04049303 n04065272 n04067472 n04069434
    n04070727 n04074963 n04081281 n04086273 n04090263 n04099969 n04111531 n04116512 n04118538 n04118776
    n04120489 n04125021 n04127249 n04131690 n04133789 n04136333 n04141076 n04141327 n04141975 n04146614
    n04147183 n04149813 n04152593 n04153751 n04154565 n04162706 n04179913 n04192698 n04200800 n04201297
    n04204238 n04204347 n04208210 n04209133 n04209239 n04228054 n04229816 n04235860 n04238763 n04239074
    n04243546 n04251144 n04252077 n04252225 n04254120 n04254680 n04254777 n04258138 n04259630 n04263257
    n04264628 n04265275 n04266014 n04270147 n04273569 n04275548 n04277352 n04285008 n04286575 n04296562
    n04310018 n04311004 n04311174 n04317175 n04325704 n04326547 n04328186 n04330267 n04332243 n04335435
    n04336792 n04344873 n04346328 n04347754 n04350905 n04355338 n04355933 n04356056 n04357314 n04366367
    n04367480 n04370456 n04371430 n04371774 n04372370 n04376876 n04380533 n04389033 n04392985 n04398044
    n04399382 n04404412 n04409515 n04417672 n04418357 n04423845 n04428191 n04429376 n04435653 n04442312
    n04443257 n04447861 n04456115 n04458633 n04461696 n04462240 n04465501 n04467665 n04476259 n04479046
    n04482393 n04483307 n04485082 n04486054 n04487081 n04487394 n04493381 n04501370 n04505470 n04507155
    n04509417 n04515003 n04517823 n04522168 n04523525 n04525038 n04525305 n04532106 n04532670 n04536866
    n04540053 n04542943 n04548280 n04548362 n04550184 n04552348 n04553703 n04554684 n04557648 n04560804
    n04562935 n04579145 n04579432 n04584207 n04589890 n04590129 n04591157 n04591713 n04592741 n04596742
    n04597913 n04599235 n04604644 n04606251 n04612504 n04613696 n06359193 n06596364 n06785654 n06794110
    n06874185 n07248320 n07565083 n07579787 n07583066 n07584110 n07590611 n07613480 n07614500 n07615774
    n07684084 n07693725 n07695742 n07697313 n07697537 n07711569 n07714571 n07714990 n07715103 n07716358
    n07716906 n07717410 n07717556 n07718472 n07718747 n07720875 n07730033 n07734744 n07742313 n07745940
    n07747607 n07749582 n07753113 n07753275 n07753592 n07754684 n07760859 n07768694 n07802026 n07831146
    n07836838 n07860988 n07871810 n07873807 n07875152 n07880968 n07892512 n07920052 n07930864 n07932039
    n09193705 n09229709 n09246464 n09256479 n09288635 n09332890 n09399592 n09421951 n09428293 n09468604
    n09472597 n09835506 n10148035 n10565667 n11879895 n11939491 n12057211 n12144580 n12267677 n12620546
    n12768682 n12985857 n12998815 n13037406 n13040303 n13044778 n13052670 n13054560 n13133613 n15075141
"""
IMAGENET_WNIDS: tuple[str, ...] = tuple(_WNID_TEXT.split())
_INDEX = {wnid: i for i, wnid in enumerate(IMAGENET_WNIDS)}

# ObjectNet 1.0's 113 classes that overlap ImageNet (the keys of its
# mappings/objectnet_to_imagenet_1k.json) and the ImageNet classes each maps to, its ImageNet
# names resolved to wnids through the release's mappings/imagenet_to_label_2012_v2 and
# mappings/pytorch_to_imagenet_2012_id.json. Nine classes map to several ImageNet classes; the
# head names a class by the first one listed (e.g. "Alarm clock" -> analog clock).
OBJECTNET_IMAGENET: dict[str, tuple[str, ...]] = {
    "Alarm clock": ("n02708093", "n03196217"),
    "Backpack": ("n02769748",),
    "Banana": ("n07753592",),
    "Band Aid": ("n02786058",),
    "Basket": ("n04204238",),
    "Bath towel": ("n02808304",),
    "Beer bottle": ("n02823428",),
    "Bench": ("n03891251",),
    "Bicycle": ("n03792782", "n02835271"),
    "Binder (closed)": ("n02840245",),
    "Bottle cap": ("n02877765",),
    "Bread loaf": ("n07684084",),
    "Broom": ("n02906734",),
    "Bucket": ("n02909870",),
    "Butcher's knife": ("n03041632",),
    "Can opener": ("n02951585",),
    "Candle": ("n02948072",),
    "Cellphone": ("n02992529",),
    "Chair": ("n02791124", "n03376595", "n04099969"),
    "Clothes hamper": ("n03482405",),
    "Coffee/French press": ("n03297495",),
    "Combination lock": ("n03075370",),
    "Computer mouse": ("n03793489",),
    "Desk lamp": ("n04380533",),
    "Dishrag or hand towel": ("n03207743",),
    "Doormat": ("n03223299",),
    "Dress": ("n03450230",),
    "Dress shoe (men)": ("n03680355",),
    "Drill": ("n03995372",),
    "Drinking Cup": ("n07930864",),
    "Drying rack for plates": ("n03961711",),
    "Envelope": ("n03291819",),
    "Fan": ("n03271574",),
    "Frying pan": ("n03400231",),
    "Hair dryer": ("n03483316",),
    "Hammer": ("n03481172",),
    "Helmet": ("n03379051", "n03127747"),
    "Iron (for clothes)": ("n03584829",),
    "Jeans": ("n03594734",),
    "Keyboard": ("n03085013",),
    "Ladle": ("n03633091",),
    "Lampshade": ("n03637318",),
    "Laptop (open)": ("n03642806",),
    "Lemon": ("n07749582",),
    "Letter opener": ("n03658185",),
    "Lighter": ("n03666591",),
    "Lipstick": ("n03676483",),
    "Match": ("n03729826",),
    "Measuring cup": ("n03733805",),
    "Microwave": ("n03761084",),
    "Mixing / Salad Bowl": ("n03775546",),
    "Monitor": ("n03782006",),
    "Mug": ("n03063599",),
    "Nail (fastener)": ("n03804744",),
    "Necklace": ("n03814906",),
    "Orange": ("n07747607",),
    "Padlock": ("n03874599",),
    "Paintbrush": ("n03876231",),
    "Paper towel": ("n03887697",),
    "Pen": ("n02783161", "n04033901", "n03388183"),
    "Pill bottle": ("n03937543",),
    "Pillow": ("n03938244",),
    "Pitcher": ("n03950228",),
    "Plastic bag": ("n03958227",),
    "Plate": ("n07579787",),
    "Plunger": ("n03970156",),
    "Pop can": ("n03983396",),
    "Portable heater": ("n04265275",),
    "Printer": ("n04004767",),
    "Remote control": ("n04074963",),
    "Ruler": ("n04118776",),
    "Running shoe": ("n04120489",),
    "Safety pin": ("n04127249",),
    "Salt shaker": ("n04131690",),
    "Sandal": ("n04133789",),
    "Screw": ("n04153751",),
    "Shovel": ("n04208210",),
    "Skirt": ("n03534580", "n03770439", "n03866082"),
    "Sleeping bag": ("n04235860",),
    "Soap dispenser": ("n04254120",),
    "Sock": ("n04254777",),
    "Soup Bowl": ("n04263257",),
    "Spatula": ("n04270147",),
    "Speaker": ("n03691459",),
    "Still Camera": ("n03976467", "n04069434"),
    "Strainer": ("n04332243",),
    "Stuffed animal": ("n04399382",),
    "Suit jacket": ("n04350905",),
    "Sunglasses": ("n04356056",),
    "Sweater": ("n04370456",),
    "Swimming trunks": ("n04371430",),
    "T-shirt": ("n03595614",),
    "Teapot": ("n04398044",),
    "Tennis racket": ("n04039381",),
    "Tie": ("n02883205", "n04591157"),
    "Toaster": ("n04442312",),
    "Toilet paper roll": ("n15075141",),
    "Trash bin": ("n02747177",),
    "Tray": ("n04476259",),
    "TV": ("n04404412",),
    "Umbrella": ("n04507155",),
    "Vacuum cleaner": ("n04517823",),
    "Vase": ("n04522168",),
    "Wallet": ("n04548362",),
    "Watch": ("n03197337",),
    "Water bottle": ("n04557648",),
    "Weight (exercise)": ("n03255030",),
    "Weight scale": ("n04141975",),
    "Wheel": ("n02974003", "n03874293"),
    "Whistle": ("n04579432",),
    "Wine bottle": ("n04591713",),
    "Winter glove": ("n03775071",),
    "Wok": ("n04596742",),
}

OBJECTNET_BORDER = 2  # pixels cropped off each side: ObjectNet's images carry a thin red border
# (Taori et al., NeurIPS 2020, crop 2 pixels before evaluating)

# dalle-split: how many of each caption's images go to each split, drawn from the `dalle` files
DALLE_SPLIT_SIZES = {"train": 20, "test": 10}
DALLE_SOURCE_SPLIT = "test"  # where `clbench data prepare dalle` puts the images



def _names_and_templates(manifest: DatasetManifest) -> tuple[list[str], list[str]]:
    """open_clip's 1000 ImageNet names, and the declaration's templates or the OpenAI 80."""
    from clbench.scenarios.datasets import imagenet_names_and_templates

    names, templates = imagenet_names_and_templates()
    return names, list(manifest.templates) or templates


def declared_wnids(manifest: DatasetManifest) -> list[str]:
    """The declaration's classes as wnids in ImageNet's order: its `class_names`, or all 1000
    when it lists none. A name that is not an ImageNet wnid is an error naming the file."""
    if not manifest.class_names:
        return list(IMAGENET_WNIDS)
    for wnid in manifest.class_names:
        if wnid not in _INDEX:
            near = closest(wnid, IMAGENET_WNIDS, n=1)
            raise ConfigError(f"{manifest.path}: class_names: '{wnid}' is not an ImageNet wnid"
                              + (f" (did you mean '{near[0]}'?)" if near else ""),
                              hint=f"a dataset of kind {manifest.loader} lists its classes as "
                                   "ImageNet wnids (e.g. n01440764), or none for all 1000")
    twice = sorted({w for w in manifest.class_names if manifest.class_names.count(w) > 1})
    if twice:
        raise ConfigError(f"{manifest.path}: class_names lists {', '.join(twice)} twice",
                          hint="each wnid is one class")
    return sorted(manifest.class_names, key=_INDEX.__getitem__)


def _image_files(folder: Path) -> list[Path]:
    from clbench.scenarios.datasets import IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _shown(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


def _prepare_in_place(manifest: DatasetManifest, args, log) -> dict:
    """Write the file index of the files where they are: the sha256 of every image, labelled by
    its class folder (a wnid, a class index, an ObjectNet folder)."""
    from clbench.scenarios.prepare import index_in_place

    kind, folder = manifest.kind, args.root or args.folder
    whole = kind.indexed(manifest)
    files = []
    for split in whole.splits:
        found, folders = kind.scan(whole, split, folder)
        files += [(f.rel, kind.index_split(split), folders[f.label]) for f in found]
    return index_in_place(folder, manifest.subdir, files,
                          f"{manifest.name}: files in place ({kind.name} layout)", log)


class ClassFolderKind(DatasetKind):
    """One folder per class under each split's folder, classes in ImageNet's class space.

    `inner` names the folder the published archive unpacks to: it may sit inside the dataset's
    folder (`<imagenet-a folder>/imagenet-a/<wnid>/`) or be that folder itself. The file index,
    when there is one, labels each file by its class folder."""

    inner: tuple[str, ...] = ()
    split_dirs: dict[str, str] = {"test": ""}  # split -> its class folders' folder, in `inner`
    class_word = "<wnid>"  # what a class folder is named by, for the layout and errors
    preparation = Preparation(flags=[ROOT_FLAG], run=_prepare_in_place)

    # ------------------------------------------------------------------ classes
    def head(self, manifest: DatasetManifest) -> list[tuple[str, str]]:
        """(class key, class name) per label, from the declaration alone: the key is what names
        the class on disk or in the declaration (a wnid here), the name open_clip's."""
        names, _ = _names_and_templates(manifest)
        return [(wnid, names[_INDEX[wnid]]) for wnid in declared_wnids(manifest)]

    def class_folders(self, manifest: DatasetManifest, folder: Path) -> list[str]:
        """The class folder of each label (the key, unless the data maps it)."""
        return [key for key, _ in self.head(manifest)]

    def indexed(self, manifest: DatasetManifest) -> DatasetManifest:
        """The declaration whose files `clbench data prepare` indexes."""
        return manifest

    def index_split(self, split: str) -> str:
        """The split as the file index records it."""
        return split

    # ------------------------------------------------------------------ layout
    def split_dir(self, manifest: DatasetManifest, split: str) -> str:
        if split not in self.split_dirs:
            raise ConfigError(f"{manifest.path}: split '{split}': kind {self.name} has "
                              f"{' and '.join(self.split_dirs)}")
        return self.split_dirs[split]

    def bases(self, folder: Path) -> list[Path]:
        return [folder / name for name in self.inner] + [folder]

    def _where(self, manifest: DatasetManifest, split: str, folder: Path) -> list[str]:
        """Where the split's class folders may be, the archive's own layout first."""
        sub = self.split_dir(manifest, split)
        return [f"{(b / sub) if sub else b}/{self.class_word}/" for b in self.bases(folder)]

    def default_layout(self, manifest: DatasetManifest) -> str:
        parts = []
        for split in manifest.splits:
            first, *others = self._where(manifest, split, Path("<data root>") / manifest.subdir)
            parts.append(f"{first}<image files>" + (f" (or {' or '.join(others)})"
                                                    if others else ""))
        return " and ".join(parts)

    def split_root(self, manifest: DatasetManifest, split: str, folder: Path,
                   class_folders: list[str]) -> Path:
        """The folder holding the split's class folders: the first candidate with any of them,
        else an error saying where they were expected."""
        from clbench.scenarios.datasets import missing_data_hint, not_found

        sub = self.split_dir(manifest, split)
        for base in self.bases(folder):
            root = base / sub
            if root.is_dir() and any((root / c).is_dir() for c in class_folders):
                return root
        where = " or ".join(self._where(manifest, split, folder))
        if not folder.is_dir():
            raise not_found(manifest, split, where)
        found = sorted(p.name for p in folder.iterdir())
        raise UserError(f"dataset '{manifest.name}' ({split} split): no class folders in "
                        f"{where} (expected {len(class_folders)} folders named by "
                        f"{self.class_word}, e.g. {class_folders[0]}; {folder} holds: "
                        f"{_shown(found) or 'nothing'})", hint=missing_data_hint(manifest))

    # ------------------------------------------------------------------ reading
    def scan(self, manifest: DatasetManifest, split: str, folder: Path):
        """The split's files on disk (label order, then path) and the class folder of each label;
        a missing class folder is an error naming it."""
        from clbench.scenarios.datasets import ListedFile, missing_data_hint

        folders = self.class_folders(manifest, folder)
        root = self.split_root(manifest, split, folder, folders)
        missing = [c for c in folders if not (root / c).is_dir()]
        if missing:
            raise UserError(f"dataset '{manifest.name}' ({split} split): {len(missing)} of its "
                            f"{len(folders)} class folders missing under {root}: "
                            f"{_shown(missing)}", hint=missing_data_hint(manifest))
        files = [ListedFile(p.relative_to(folder).as_posix(), label)
                 for label, c in enumerate(folders) for p in _image_files(root / c)]
        return files, folders

    def list_files(self, manifest: DatasetManifest, split: str, folder: Path,
                   index: PreparedIndex | None) -> Listing:
        from clbench.scenarios.datasets import ListedFile, Listing

        names = [name for _, name in self.head(manifest)]
        _, templates = _names_and_templates(manifest)
        recorded = ([r for r in index.records if r.split == self.index_split(split)]
                    if index is not None else [])
        if recorded:  # an index without this split (another dataset's) is not this one's
            label_of = {c: i for i, c in enumerate(self.class_folders(manifest, folder))}
            files = sorted((ListedFile(r.path, label_of[r.label], None, r) for r in recorded
                            if r.label in label_of), key=lambda f: (f.label, f.rel))
            return Listing(files, names, templates, index, folder)  # in the order of `scan`
        files, _ = self.scan(manifest, split, folder)
        return Listing(files, names, templates, None, folder)


@register_loader("imagenet-1k")
class Imagenet1kKind(ClassFolderKind):
    summary = ("ImageNet's train/<wnid>/ and val/<wnid>/ (the test split); class_names: a subset "
               "of wnids")
    split_dirs = {"train": "train", "test": "val"}

    def indexed(self, manifest):
        # the whole ImageNet folder, whichever subset is prepared: the index is the folder's
        return replace(manifest, class_names=(), splits=tuple(self.split_dirs))

    def index_split(self, split):
        # ImageNet's own split names, as `clbench data prepare imagenet` records val/
        return self.split_dirs.get(split, split)


@register_loader("imagenet-v2")
class ImagenetV2Kind(ClassFolderKind):
    summary = "ImageNetV2 matched-frequency, <class index 0..999>/ folders"
    inner = ("imagenetv2-matched-frequency-format-val",)
    class_word = "<class index>"

    def head(self, manifest):
        names, _ = _names_and_templates(manifest)
        return [(str(_INDEX[w]), names[_INDEX[w]]) for w in declared_wnids(manifest)]


@register_loader("imagenet-a")
class ImagenetAKind(ClassFolderKind):
    summary = "ImageNet-A, imagenet-a/<wnid>/ (its 200 classes)"
    inner = ("imagenet-a",)


@register_loader("imagenet-r")
class ImagenetRKind(ClassFolderKind):
    summary = "ImageNet-R, imagenet-r/<wnid>/ (its 200 classes)"
    inner = ("imagenet-r",)


@register_loader("imagenet-sketch")
class ImagenetSketchKind(ClassFolderKind):
    summary = "ImageNet-Sketch, sketch/<wnid>/"
    inner = ("sketch",)


def _read_mapping(base: Path, name: str, manifest: DatasetManifest) -> dict:
    from clbench.scenarios.datasets import missing_data_hint

    path = base / "mappings" / name
    if not path.is_file():
        raise UserError(f"dataset '{manifest.name}': ObjectNet under {base} has no mappings/{name} "
                        "(its folder-to-class mapping ships with the images)",
                        hint="unpack the whole ObjectNet 1.0 archive, mappings/ included. "
                             + missing_data_hint(manifest))
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(f"{path} is not JSON ({err})",
                        hint="restore it from the ObjectNet 1.0 archive") from None
    if not isinstance(mapping, dict):
        raise UserError(f"{path}: expected a JSON object (name -> name)",
                        hint="restore it from the ObjectNet 1.0 archive")
    return mapping


@register_loader("objectnet")
class ObjectnetKind(ClassFolderKind):
    summary = ("ObjectNet 1.0, objectnet-1.0/images/<folder>/ with mappings/; its classes that "
               "overlap ImageNet")
    inner = ("objectnet-1.0",)
    split_dirs = {"test": "images"}
    class_word = "<folder>"

    def labels(self, manifest: DatasetManifest) -> list[str]:
        """The declared ObjectNet classes (`class_names`, ObjectNet's own names), in the head's
        order: ImageNet's order of the class each is named by."""
        for label in manifest.class_names:
            if label not in OBJECTNET_IMAGENET:
                near = closest(label, OBJECTNET_IMAGENET, n=1)
                raise ConfigError(f"{manifest.path}: class_names: '{label}' is not one of "
                                  "ObjectNet's classes that overlap ImageNet"
                                  + (f" (did you mean '{near[0]}'?)" if near else ""),
                                  hint="list ObjectNet's names, as its "
                                       "mappings/objectnet_to_imagenet_1k.json does")
        labels = list(dict.fromkeys(manifest.class_names or OBJECTNET_IMAGENET))
        return sorted(labels, key=lambda label: _INDEX[OBJECTNET_IMAGENET[label][0]])

    def head(self, manifest):
        names, _ = _names_and_templates(manifest)
        return [(label, names[_INDEX[OBJECTNET_IMAGENET[label][0]]])
                for label in self.labels(manifest)]

    def class_folders(self, manifest, folder):
        """Each class's image folder, by the release's own mappings (required)."""
        from clbench.scenarios.datasets import not_found

        base = next((b for b in self.bases(folder) if (b / "images").is_dir()), None)
        if base is None:
            where = " or ".join(f"{b}/images/" for b in self.bases(folder))
            raise not_found(manifest, "test", where)
        folder_of = {label: f for f, label in
                     _read_mapping(base, "folder_to_objectnet_label.json", manifest).items()}
        overlap = _read_mapping(base, "objectnet_to_imagenet_1k.json", manifest)
        labels = self.labels(manifest)
        for what, known in (("objectnet_to_imagenet_1k.json", overlap),
                            ("folder_to_objectnet_label.json", folder_of)):
            absent = [label for label in labels if label not in known]
            if absent:
                raise UserError(f"dataset '{manifest.name}': {base}/mappings/{what} lacks "
                                f"{len(absent)} of its classes: {_shown(absent)}",
                                hint="this is not ObjectNet 1.0's mapping: restore mappings/ "
                                     "from the ObjectNet 1.0 archive")
        return [folder_of[label] for label in labels]

    def load_split(self, manifest, split, data_root, skip_corrupt):
        data = super().load_split(manifest, split, data_root, skip_corrupt)
        load = data.load

        def cropped(i: int):
            from PIL import ImageOps

            return ImageOps.crop(load(i), border=OBJECTNET_BORDER)

        return replace(data, load=cropped)


# --------------------------------------------------------------------------- DALL-E stream


def split_rank(rel: str) -> str:
    """What orders a caption's images for the split: the sha256 of the file's path relative to
    the dataset folder (e.g. test/eating/07.png), so the split depends on names alone, never on
    the order of listing or on file contents."""
    return hashlib.sha256(rel.encode("utf-8")).hexdigest()


def _prepare_dalle_source(manifest: DatasetManifest, args, log) -> dict:
    """The files of `dalle` itself (a stream and its source share the folder and its index)."""
    from clbench.scenarios.prepare import prepare_dalle

    source = replace(manifest, name=manifest.subdir, splits=(DALLE_SOURCE_SPLIT,))
    return prepare_dalle(args.source, args.out or args.folder, source,
                         skip_corrupt=args.skip_corrupt, log=log)


@register_loader("dalle-split")
class DalleSplitKind(DatasetKind):
    """The `dalle` images as a stream of their own: of each caption's images (30 in the paper),
    ordered by `split_rank`, the first 20 are `train` and the next 10 `test`; any beyond 30 are
    left out. Fewer than 30 is an error naming the caption."""

    summary = (f"the dalle images ({DALLE_SOURCE_SPLIT}/<caption>/), split "
               f"{DALLE_SPLIT_SIZES['train']} train + {DALLE_SPLIT_SIZES['test']} test per "
               "caption by the sha256 of each path")
    preparation = Preparation(flags=DALLE_FLAGS, run=_prepare_dalle_source)

    def default_layout(self, manifest):
        return (f"<data root>/{manifest.subdir}/{DALLE_SOURCE_SPLIT}/<caption>/<image files> "
                "(the dalle dataset's files)")

    def source(self, manifest: DatasetManifest, folder: Path,
               index: PreparedIndex | None) -> Listing:
        """Every image of the `dalle` folder, as `dalle` lists them."""
        from clbench.scenarios.datasets import list_folder, listing_from_index

        if index is not None and any(r.split == DALLE_SOURCE_SPLIT for r in index.records):
            return listing_from_index(manifest, DALLE_SOURCE_SPLIT, folder, index)
        return list_folder(manifest, DALLE_SOURCE_SPLIT, folder)

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import missing_data_hint

        if split not in DALLE_SPLIT_SIZES:
            raise ConfigError(f"{manifest.path}: split '{split}': kind {self.name} has "
                              f"{' and '.join(DALLE_SPLIT_SIZES)}")
        source = self.source(manifest, folder, index)
        need = sum(DALLE_SPLIT_SIZES.values())
        start = 0 if split == "train" else DALLE_SPLIT_SIZES["train"]
        keep: set[str] = set()
        for label, caption in enumerate(source.class_names):
            ranked = sorted((f.rel for f in source if f.label == label), key=split_rank)
            if len(ranked) < need:
                raise UserError(
                    f"dataset '{manifest.name}': caption '{caption}' has {len(ranked)} images "
                    f"under {folder / DALLE_SOURCE_SPLIT / caption}, the split needs {need} "
                    f"({DALLE_SPLIT_SIZES['train']} train + {DALLE_SPLIT_SIZES['test']} test)",
                    hint=missing_data_hint(manifest))
            keep.update(ranked[start:start + DALLE_SPLIT_SIZES[split]])
        # caption by caption, whether listed from the file index or from the folders
        return source.like(sorted((f for f in source if f.rel in keep),
                                  key=lambda f: (f.label, f.rel)))

    def check(self, manifest, data_root):
        from clbench.scenarios.check import check_files

        result = check_files(manifest, data_root)
        result.notes.append(f"train and test are drawn from {DALLE_SOURCE_SPLIT}/<caption>/ "
                            "(the dalle files): `clbench data check dalle` checks them all")
        return result
