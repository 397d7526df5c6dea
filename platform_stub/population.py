"""The simulated world: members, their devices, titles, ISPs, OCAs and daily load curves.

Everything is drawn from one `random.Random(seed)`, so a seed names one world. Values look
like a large streaming service's (device models, ISP names and ASNs, per-title bitrate
ladders) but emails use reserved example domains and ids are synthetic.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

# --- reference data --------------------------------------------------------------------


@dataclass(frozen=True)
class RegionSpec:
    """A serving region: its countries (with weights) and UTC offset for the load curve."""

    name: str
    utc_offset_h: float
    weight: float
    countries: tuple[tuple[str, float], ...]


REGIONS: tuple[RegionSpec, ...] = (
    RegionSpec("us-east", -5, 0.22, (("US", 0.9), ("CA", 0.1))),
    RegionSpec("us-west", -8, 0.12, (("US", 0.88), ("CA", 0.12))),
    RegionSpec("eu-west", 0, 0.16, (("GB", 0.5), ("FR", 0.3), ("IE", 0.05), ("ES", 0.15))),
    RegionSpec("eu-central", 1, 0.14, (("DE", 0.55), ("NL", 0.15), ("PL", 0.15), ("IT", 0.15))),
    RegionSpec("latam", -3, 0.14, (("BR", 0.6), ("MX", 0.3), ("AR", 0.1))),
    RegionSpec("apac-north", 9, 0.08, (("JP", 0.7), ("KR", 0.3))),
    RegionSpec("apac-south", 5.5, 0.08, (("IN", 0.7), ("AU", 0.3))),
    RegionSpec("apac-oceania", 10, 0.06, (("AU", 0.8), ("NZ", 0.2))),
)

# country -> ((ISP, ASN, relative share, throughput quality factor), ...)
ISPS: dict[str, tuple[tuple[str, int, float, float], ...]] = {
    "US": (
        ("Comcast", 7922, 0.30, 1.1),
        ("Charter Spectrum", 20115, 0.22, 1.0),
        ("AT&T", 7018, 0.16, 0.95),
        ("Verizon Fios", 701, 0.12, 1.3),
        ("Cox", 22773, 0.08, 0.9),
        ("T-Mobile US", 21928, 0.12, 0.6),
    ),
    "CA": (("Rogers", 812, 0.4, 1.0), ("Bell Canada", 577, 0.4, 1.0), ("Telus", 852, 0.2, 0.9)),
    "GB": (
        ("BT", 2856, 0.35, 1.0),
        ("Sky Broadband", 5607, 0.3, 1.0),
        ("Virgin Media", 5089, 0.25, 1.1),
        ("TalkTalk", 13285, 0.1, 0.8),
    ),
    "FR": (("Orange", 3215, 0.4, 1.1), ("Free", 12322, 0.35, 1.1), ("SFR", 15557, 0.25, 0.9)),
    "IE": (("Eir", 5466, 0.6, 0.9), ("Virgin Media IE", 6830, 0.4, 1.0)),
    "ES": (("Movistar", 3352, 0.6, 1.1), ("Vodafone ES", 12430, 0.4, 1.0)),
    "DE": (
        ("Deutsche Telekom", 3320, 0.45, 1.0),
        ("Vodafone DE", 3209, 0.35, 0.9),
        ("O2 Germany", 6805, 0.2, 0.8),
    ),
    "NL": (("KPN", 1136, 0.55, 1.2), ("Ziggo", 33915, 0.45, 1.1)),
    "PL": (("Orange Polska", 5617, 0.6, 0.9), ("UPC Polska", 6830, 0.4, 0.9)),
    "IT": (("TIM", 3269, 0.6, 0.8), ("Fastweb", 12874, 0.4, 0.9)),
    "BR": (("Claro Brasil", 28573, 0.45, 0.7), ("Vivo", 26599, 0.4, 0.7), ("Oi", 7738, 0.15, 0.6)),
    "MX": (("Telmex", 8151, 0.6, 0.7), ("Totalplay", 22884, 0.4, 0.8)),
    "AR": (("Telecom Argentina", 7303, 0.6, 0.6), ("Claro AR", 11664, 0.4, 0.6)),
    "JP": (("NTT", 4713, 0.45, 1.3), ("KDDI", 2516, 0.3, 1.2), ("SoftBank", 17676, 0.25, 1.1)),
    "KR": (("KT", 4766, 0.5, 1.4), ("SK Broadband", 9318, 0.5, 1.4)),
    "IN": (("Reliance Jio", 55836, 0.6, 0.5), ("Bharti Airtel", 9498, 0.4, 0.55)),
    "AU": (("Telstra", 1221, 0.55, 0.9), ("Optus", 4804, 0.45, 0.85)),
    "NZ": (("Spark NZ", 4771, 0.6, 0.9), ("One NZ", 9500, 0.4, 0.9)),
}

# Connection medians (kbps) before the ISP quality factor.
CONNECTION_KBPS: dict[str, float] = {"ethernet": 45_000, "wifi": 20_000, "cellular": 7_000}


@dataclass(frozen=True)
class DeviceFamily:
    """A platform: device type, OS, models, app versions (oldest first) and DRM system."""

    key: str
    device_type: str
    os: str
    models: tuple[str, ...]
    app_versions: tuple[str, ...]
    drm: str
    weight: float
    connections: tuple[tuple[str, float], ...]
    max_kbps: int


DEVICE_FAMILIES: tuple[DeviceFamily, ...] = (
    DeviceFamily(
        "samsung_tizen",
        "tv",
        "Tizen",
        ("Samsung Tizen TV 2020", "Samsung Tizen TV 2022", "Samsung Tizen TV 2024"),
        ("5.2.101", "5.3.8", "5.4.2"),
        "playready",
        0.16,
        (("wifi", 0.7), ("ethernet", 0.3)),
        16_000,
    ),
    DeviceFamily(
        "lg_webos",
        "tv",
        "webOS",
        ("LG webOS TV 2021", "LG webOS TV 2023"),
        ("7.1.4", "7.2.0"),
        "playready",
        0.09,
        (("wifi", 0.7), ("ethernet", 0.3)),
        16_000,
    ),
    DeviceFamily(
        "android_tv",
        "tv",
        "Android TV",
        ("Sony Bravia Android TV 2022", "NVIDIA Shield TV Pro", "Google TV Streamer"),
        ("9.14.0", "9.15.2", "9.16.1"),
        "widevine",
        0.08,
        (("wifi", 0.75), ("ethernet", 0.25)),
        16_000,
    ),
    DeviceFamily(
        "roku",
        "tv",
        "Roku OS",
        ("Roku Ultra", "Roku Express 4K+", "TCL Roku TV"),
        ("4.2.1205", "4.3.0108"),
        "playready",
        0.08,
        (("wifi", 0.85), ("ethernet", 0.15)),
        16_000,
    ),
    DeviceFamily(
        "fire_tv",
        "tv",
        "Fire OS",
        ("Fire TV Stick 4K Max", "Fire TV Cube (3rd gen)"),
        ("1.1.31", "1.1.33"),
        "widevine",
        0.06,
        (("wifi", 0.95), ("ethernet", 0.05)),
        16_000,
    ),
    DeviceFamily(
        "apple_tv",
        "tv",
        "tvOS",
        ("Apple TV 4K (2nd gen)", "Apple TV 4K (3rd gen)"),
        ("16.32.0", "16.34.1"),
        "fairplay",
        0.05,
        (("wifi", 0.6), ("ethernet", 0.4)),
        16_000,
    ),
    DeviceFamily(
        "ios",
        "mobile",
        "iOS",
        ("iPhone 13", "iPhone 15 Pro", "iPad Air (5th gen)"),
        ("16.31.0", "16.32.2", "16.34.1"),
        "fairplay",
        0.12,
        (("wifi", 0.65), ("cellular", 0.35)),
        3_000,
    ),
    DeviceFamily(
        "android",
        "mobile",
        "Android",
        ("Samsung Galaxy S23", "Google Pixel 8", "Xiaomi Redmi Note 12"),
        ("8.112.0", "8.114.1", "8.116.0"),
        "widevine",
        0.13,
        (("wifi", 0.6), ("cellular", 0.4)),
        3_000,
    ),
    DeviceFamily(
        "web_windows",
        "web",
        "Windows",
        ("Chrome 131 on Windows", "Edge 131 on Windows", "Firefox 133 on Windows"),
        ("6.0052.1", "6.0053.0"),
        "widevine",
        0.1,
        (("wifi", 0.6), ("ethernet", 0.4)),
        5_800,
    ),
    DeviceFamily(
        "web_macos",
        "web",
        "macOS",
        ("Safari 18 on macOS", "Chrome 131 on macOS"),
        ("6.0052.1", "6.0053.0"),
        "fairplay",
        0.05,
        (("wifi", 0.8), ("ethernet", 0.2)),
        5_800,
    ),
    DeviceFamily(
        "playstation",
        "console",
        "PlayStation",
        ("PlayStation 5", "PlayStation 4 Pro"),
        ("3.41.0", "3.42.2"),
        "playready",
        0.05,
        (("ethernet", 0.55), ("wifi", 0.45)),
        16_000,
    ),
    DeviceFamily(
        "xbox",
        "console",
        "Xbox",
        ("Xbox Series X", "Xbox One S"),
        ("2.24.1", "2.25.0"),
        "playready",
        0.03,
        (("ethernet", 0.5), ("wifi", 0.5)),
        16_000,
    ),
)

PLANS: tuple[tuple[str, float, int, int], ...] = (
    # (plan, share, max streams, max kbps)
    ("standard_with_ads", 0.35, 2, 5_800),
    ("standard", 0.4, 2, 5_800),
    ("premium", 0.25, 4, 16_000),
)

# A per-title ladder is a subset of these rungs (kbps); 4K titles reach 16000.
LADDER_KBPS: tuple[int, ...] = (
    235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800, 8000, 16000,
)  # fmt: skip

GENRES = (
    "drama", "comedy", "thriller", "documentary", "animation", "crime", "sci-fi",
    "romance", "horror", "reality", "kids", "action",
)  # fmt: skip
_WORDS_A = (
    "Silent", "Crimson", "Hidden", "Last", "Broken", "Golden", "Midnight", "Northern",
    "Lost", "Electric", "Quiet", "Wild", "Hollow", "Iron", "Paper", "Glass",
)  # fmt: skip
_WORDS_B = (
    "Harbor", "Kingdom", "Signal", "Orchard", "Frontier", "Tide", "Archive", "Garden",
    "Protocol", "Empire", "Station", "Mirror", "Valley", "Circuit", "Letters", "Season",
)  # fmt: skip
PREMIERE_RANK = 2
_FIRST = ("alex", "sam", "kim", "maria", "li", "noah", "emma", "ravi", "yuki", "lucas", "ana")
_LAST = ("smith", "garcia", "chen", "muller", "rossi", "silva", "tanaka", "khan", "novak")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Isp:
    """An access network in one country and region."""

    name: str
    asn: int
    country: str
    region: str
    quality: float
    oca_ids: tuple[str, ...]  # embedded OCAs first, then the region's exchange OCAs
    oca_cum_weights: tuple[float, ...]


@dataclass(frozen=True)
class Oca:
    """An Open Connect Appliance (or the regional origin fallback)."""

    oca_id: str
    region: str
    cdn_tier: str  # edge | origin
    isp: str | None  # the ISP it is embedded in, None for exchange sites and origin


@dataclass(frozen=True)
class Device:
    """One device of a member."""

    device_id: str
    family: DeviceFamily
    device_model: str
    app_version: str


@dataclass(frozen=True)
class Member:
    """One subscriber account."""

    member_id: str
    email: str
    plan: str
    max_kbps: int
    country: str
    region: str
    isp: Isp
    profiles: tuple[str, ...]
    devices: tuple[Device, ...]


@dataclass(frozen=True)
class Title:
    """A catalog title with its bitrate ladder."""

    title_id: str
    name: str
    genre: str
    kind: str  # movie | episode
    runtime_ms: int
    ladder_kbps: tuple[int, ...]


@dataclass(frozen=True)
class Population:
    """The whole simulated world for one seed."""

    seed: int
    members: tuple[Member, ...]
    titles: tuple[Title, ...]
    title_cum_weights: tuple[float, ...]  # Zipf popularity over released titles
    isps: tuple[Isp, ...]
    ocas: dict[str, Oca]
    origin_by_region: dict[str, str]
    members_by_region: dict[str, tuple[int, ...]]  # region -> member indices

    @property
    def premiere(self) -> Title:
        """The new release a flash crowd rushes to."""
        return self.titles[PREMIERE_RANK]

    def pick_title(self, rng: random.Random) -> Title:
        """A title drawn by popularity."""
        i = bisect.bisect_left(self.title_cum_weights, rng.random() * self.title_cum_weights[-1])
        return self.titles[i]


def _diurnal_shape(hour_local: float) -> float:
    phase = math.cos(2 * math.pi * (hour_local - 21.0) / 24.0)
    return 0.15 + float(((1 + phase) / 2) ** 1.5)


# Normalises the curve to a daily mean of 1, so a rate means "events/s on an average hour".
_DIURNAL_MEAN = sum(_diurnal_shape(h / 10) for h in range(240)) / 240


def diurnal_load(hour_local: float) -> float:
    """Relative viewing load at a local hour: trough near 09:00, peak near 21:00 (mean 1)."""
    return _diurnal_shape(hour_local) / _DIURNAL_MEAN


def region_load(region: RegionSpec, epoch_s: float) -> float:
    """Load of `region` at UTC epoch second `epoch_s` (its diurnal curve in local time)."""
    hour = ((epoch_s / 3600.0) + region.utc_offset_h) % 24.0
    return region.weight * diurnal_load(hour)


def _weighted(rng: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in items]
    weights = [w for _, w in items]
    return rng.choices(names, weights)[0]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _hex_id(rng: random.Random, bits: int = 64) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _build_network(rng: random.Random) -> tuple[tuple[Isp, ...], dict[str, Oca], dict[str, str]]:
    ocas: dict[str, Oca] = {}
    origin_by_region: dict[str, str] = {}
    isps: list[Isp] = []
    for region in REGIONS:
        origin_id = f"origin-{region.name}"
        ocas[origin_id] = Oca(origin_id, region.name, "origin", None)
        origin_by_region[region.name] = origin_id
        ix_ids = [f"oca-ix-{region.name}-{n:02d}" for n in range(1, 4)]
        for ix in ix_ids:
            ocas[ix] = Oca(ix, region.name, "edge", None)
        for country, _ in region.countries:
            for name, asn, _share, quality in ISPS[country]:
                embedded = [
                    f"oca-{_slug(name)}-{region.name}-{n:02d}"
                    for n in range(1, rng.randint(1, 3) + 1)
                ]
                for oca_id in embedded:
                    ocas[oca_id] = Oca(oca_id, region.name, "edge", name)
                # Steering prefers the ISP's embedded caches; exchange sites take overflow.
                weights = [0.85 / len(embedded)] * len(embedded) + [0.15 / len(ix_ids)] * len(
                    ix_ids
                )
                isps.append(
                    Isp(
                        name,
                        asn,
                        country,
                        region.name,
                        quality,
                        tuple(embedded + ix_ids),
                        tuple(itertools.accumulate(weights)),
                    )
                )
    return tuple(isps), ocas, origin_by_region


def _build_titles(rng: random.Random, count: int) -> tuple[Title, ...]:
    titles: list[Title] = []
    used: set[str] = set()
    for i in range(count):
        name = f"{rng.choice(('The ', ''))}{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)}"
        while name in used:
            name = f"{name} {rng.randint(2, 9)}"
        used.add(name)
        kind = "episode" if rng.random() < 0.6 else "movie"
        runtime_min = rng.uniform(22, 62) if kind == "episode" else rng.uniform(85, 150)
        top = 16_000 if rng.random() < 0.4 else rng.choice((4_300, 5_800))
        titles.append(
            Title(
                # Unique by construction: the index picks the block, the draw the number.
                title_id=str(80_000_000 + i * 1_000 + rng.randrange(1_000)),
                name=name,
                genre=rng.choice(GENRES),
                kind=kind,
                runtime_ms=int(runtime_min * 60_000),
                ladder_kbps=tuple(k for k in LADDER_KBPS if k <= top),
            )
        )
    # The new series premiere sits at popularity rank 3; a flash crowd multiplies its starts.
    p = titles[PREMIERE_RANK]
    titles[PREMIERE_RANK] = Title(
        p.title_id, f"{p.name}: Premiere", p.genre, "episode", p.runtime_ms, LADDER_KBPS
    )
    return tuple(titles)


def build_population(seed: int, members: int, titles: int = 300) -> Population:
    """The world for `seed`: `members` accounts with devices, `titles` titles, the network."""
    rng = random.Random(f"population:{seed}")
    isps, ocas, origin_by_region = _build_network(rng)
    isps_by_country: dict[str, list[Isp]] = {}
    for isp in isps:
        isps_by_country.setdefault(f"{isp.country}/{isp.region}", []).append(isp)
    share = {(c, n): s for c, entries in ISPS.items() for n, _a, s, _q in entries}

    region_names = [r.name for r in REGIONS]
    region_weights = [r.weight for r in REGIONS]
    family_weights = [f.weight for f in DEVICE_FAMILIES]
    plan_names = [p[0] for p in PLANS]
    plan_weights = [p[1] for p in PLANS]
    plan_kbps = {p[0]: p[3] for p in PLANS}
    region_by_name = {r.name: r for r in REGIONS}

    result: list[Member] = []
    by_region: dict[str, list[int]] = {r: [] for r in region_names}
    for index in range(members):
        region = region_by_name[rng.choices(region_names, region_weights)[0]]
        country = _weighted(rng, region.countries)
        candidates = isps_by_country[f"{country}/{region.name}"]
        isp = rng.choices(candidates, [share[(country, i.name)] for i in candidates])[0]
        member_id = f"m-{_hex_id(rng)}"
        plan = rng.choices(plan_names, plan_weights)[0]
        profiles = tuple(f"{member_id}-p{k}" for k in range(1, rng.randint(1, 5) + 1))
        devices = []
        for _ in range(rng.choices((1, 2, 3, 4), (0.35, 0.35, 0.2, 0.1))[0]):
            family = rng.choices(DEVICE_FAMILIES, family_weights)[0]
            # Most devices run the newest app version; a tail lags behind.
            versions = family.app_versions
            version_weights = [0.5**k for k in range(len(versions), 0, -1)]
            version_weights[-1] += 1.0
            devices.append(
                Device(
                    device_id=f"d-{_hex_id(rng)}",
                    family=family,
                    device_model=rng.choice(family.models),
                    app_version=rng.choices(versions, version_weights)[0],
                )
            )
        email = (
            f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10_000)}"
            f"@{rng.choice(_EMAIL_DOMAINS)}"
        )
        result.append(
            Member(
                member_id,
                email,
                plan,
                plan_kbps[plan],
                country,
                region.name,
                isp,
                profiles,
                tuple(devices),
            )
        )
        by_region[region.name].append(index)

    catalog = _build_titles(rng, titles)
    # Zipf-like popularity: a few hits take a large share of plays.
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(catalog))]
    return Population(
        seed=seed,
        members=tuple(result),
        titles=catalog,
        title_cum_weights=tuple(itertools.accumulate(weights)),
        isps=isps,
        ocas=ocas,
        origin_by_region=origin_by_region,
        members_by_region={r: tuple(ix) for r, ix in by_region.items()},
    )


def member_record(member: Member) -> dict[str, object]:
    """A member as written to `members.jsonl` (what a member directory would load)."""
    return {
        "member_id": member.member_id,
        "email": member.email,
        "plan": member.plan,
        "country": member.country,
        "region": member.region,
        "isp": member.isp.name,
        "asn": member.isp.asn,
        "profiles": list(member.profiles),
        "devices": [
            {
                "device_id": d.device_id,
                "device_type": d.family.device_type,
                "device_model": d.device_model,
                "os": d.family.os,
                "app_version": d.app_version,
            }
            for d in member.devices
        ],
    }
