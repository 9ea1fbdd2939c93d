"""Detection settings: every threshold of the detectors in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SETTINGS", "HAZARD_PRIORITY", "DetectSettings"]

#: When one clear look matches several hazards, the most specific one names it.
HAZARD_PRIORITY: tuple[str, ...] = ("flood", "abrupt_loss", "no_planting", "drought")


@dataclass(frozen=True)
class DetectSettings:
    """Thresholds of the detectors. Values are NDVI units unless said otherwise.

    Defaults are physical/robust choices (deficits relative to the farm's own median and to
    its peers' median, scales from MAD with a floor), not thresholds fitted to a scenario.
    """

    #: index the vegetation detectors read (``<index>_mean``)
    index: str = "ndvi"
    #: clear looks below this clear share are ignored (status ``ok`` is required anyway)
    min_clear_fraction: float = 0.0
    #: rows handed to the alert lifecycle cover this many days before ``asof``
    lookback_days: int = 400

    # --- own history: same time of year in earlier seasons -------------------------------
    #: half-width of the day-of-year window that counts as "the same stage"
    history_window_days: int = 10
    #: history looks must be at least this much older (i.e. from earlier seasons)
    history_min_gap_days: int = 300
    #: a season shifted this many days early/late is normal: the deficit is taken against
    #: the lowest of the history medians over these lags (absorbs early harvests, late sowing)
    phenology_tolerance_days: int = 8
    min_history_looks: int = 3
    #: floor of robust scales (1.4826 x MAD), so that very regular histories do not make
    #: noise look unusual; covers look-to-look noise and processing-baseline changes
    scale_floor: float = 0.04
    #: where the expected value is below this the field is bare: deficits are not judged
    green_min: float = 0.35

    # --- peers: same crop (and region when it has enough farms), same acquisition date ---
    min_peers: int = 5
    #: farms without a region, or whose region has fewer than ``min_peers`` farms of their
    #: crop, are judged against the same-crop farms within this radius of their centroid
    #: (km). 15 km: the scale of a county's farming area and of the rain systems and
    #: sowing dates that farms share (convective storms are 10-20 km across), yet wide enough
    #: to hold ``min_peers`` farms of a crop in a loan book; within it the sky on an
    #: acquisition date is one Sentinel-2 overpass. 0 disables the radius route.
    peer_radius_km: float = 15.0
    #: at most this many nearest same-crop farms form a radius group (the farm included): a
    #: median of 20 tolerates 9 odd farms; more adds cost, not information, and reaches
    #: further than the nearest farms that share the farm's weather most
    radius_max_peers: int = 20

    # --- drought: sustained deficit against own history --------------------------------
    drought_deficit: float = 0.15
    drought_z: float = 2.5
    #: idiosyncratic drought also needs the farm to stand out from its peers
    drought_peer_z: float = 2.5
    drought_peer_deficit: float = 0.10
    #: a deficit shared by the peers (systemic) must be at least this large to alert: a
    #: region-wide mild stress is not an event, a regional drought is
    systemic_deficit: float = 0.30
    #: a look ``drought_deficit`` below its own history and lower than every earlier
    #: same-stage look of the farm by more than the look-to-look noise (``scale_floor``) is
    #: below its own history even when a very variable history (a
    #: rangeland's rainy seasons) keeps its robust z short of ``drought_z``: with n earlier
    #: looks a normal look is the lowest with probability 1/(n+1), so this needs n >= this
    #: many (8: <= 11 % a look, ~1 % for the two agreeing looks a drought needs); 0 disables
    drought_vci_min_history: int = 8
    #: crops without a calendar: where the peers' median is this share below its highest so
    #: far, the group is out of its growing season (senesced, dormant, under snow). A farm's
    #: gap to such peers is snow cover or phenology, not water stress: drought is then judged
    #: against the farm's own history only. 0 disables
    dormant_peer_decline: float = 0.30

    #: a farm's usual standing against its peers at this time of year (the median of index
    #: minus peers' median over its earlier-season looks near the same day of year, see
    #: :mod:`.seasonal`) is taken off its peer gap where the peer gap decides a drought --
    #: looks without an own baseline at that date, the change route's "below its peers"
    #: check and one-look confirmation (see ``detectors.season_peer``): a farm with a phenology of its own (a variety
    #: that senesces early, a shaded or wetter plot) stands 0.10-0.15 below a mixed peer
    #: group every September, and being there again is its normal, not a drought (Landsat
    #: blocks LS0002-5). Needs this many such looks (3: a median that one odd look does not
    #: move); 0 disables
    seasonal_gap_min_looks: int = 3
    #: ... from at least this many earlier seasons: an offset seen in one season only may be
    #: that season's own event (a drought, a late sowing), not the farm's habit
    seasonal_gap_min_seasons: int = 2

    # --- drought, change route: the farm loses standing against its peers ----------------
    #: the farm's usual standing (index minus peers' median) is the median over its own looks
    #: this many days before the current one (lagged, so a developing event does not become
    #: its own reference)
    change_ref_min_days: int = 10
    change_ref_max_days: int = 45
    #: floor of the peers' robust scale of the standing change (same-date cross-section)
    change_scale_floor: float = 0.02
    #: canopy-water index that must corroborate a change-route drought (``<index>_mean``);
    #: "" disables the change route
    moisture_index: str = "ndmi"
    #: a farm still greening and at or above the level its peers had this many days ago is
    #: merely late (sown later, a phenology offset), not failing; 0 disables the guard
    change_lag_guard_days: int = 15
    #: a farm that rose since its previous look by at least this share of its peers' rise
    #: (peers greening) keeps pace: late, not stressed -- no drought on that look; 0 disables
    late_pace_share: float = 0.75
    #: ... provided the gap to the peers is what a crop this many days late shows: the farm is
    #: at or above the peers' median of this many days before (a larger gap is not lateness)
    late_max_lag_days: int = 30

    # --- abrupt loss: a large drop between consecutive clear looks ------------------------
    abrupt_drop: float = 0.15
    abrupt_drop_rel: float = 0.30
    abrupt_min_before: float = 0.35
    abrupt_max_gap_days: int = 30
    #: peers' median drop over the same interval must be below this share of the farm's drop
    abrupt_peer_share: float = 0.5
    abrupt_peer_z: float = 2.5
    #: inside the calendar's harvest window a drop is excused as harvest only once the peers
    #: are ripening: their median this many (relative) below its peak of the season. A green
    #: crop flattened while its peers are still green is a loss, not an early harvest.
    ripening_decline: float = 0.15
    #: where there are no peers, a drop spread over up to two looks within this many days
    #: (two 16-day composites) counts as abrupt when it takes the farm from its normal range
    #: to far below its own history (``drought_z`` and ``drought_deficit``) and exceeds
    #: ``abrupt_drop`` beyond the change its own history expects over the interval: a
    #: plantation felled over two composites, judged without peers or a calendar. 0 disables
    abrupt_own_window_days: int = 35
    #: ... and by this many robust spreads of the farm's own look-to-look changes at this
    #: time of year in earlier seasons (how fast it usually moves then)
    abrupt_own_z: float = 4.0
    #: the look after a loss that is still ``abrupt_drop`` below the level before the loss
    #: and kept at least this share of it is the loss still (the crop did not come back):
    #: labelled abrupt loss, so a loss that waits for a second look (unknown sky, a hazy
    #: date) is confirmed by the next look when it persists, not when it was a dip that
    #: recovered (a composite series' clear-fell: 0.84, 0.62, 0.66). Half: a wobble of the
    #: floor is not a recovery, a look back above the middle of the drop is. 0 disables
    abrupt_hold_share: float = 0.5

    # --- flood: standing water where the crop should be ---------------------------------
    flood_water: float = 0.20
    #: the water share must exceed the peers' and the farm's own usual share by this margin
    flood_margin: float = 0.15
    #: NDWI (McFeeters) fallback when water_fraction is missing
    flood_ndwi: float = 0.0
    flood_ndwi_margin: float = 0.3

    # --- no planting: no green-up while peers have greened --------------------------------
    no_planting_gap: float = 0.15
    no_planting_peer_green: float = 0.30
    #: a farm whose highest value this season stays under this never greened
    no_planting_max: float = 0.30

    # --- stale data ------------------------------------------------------------------------
    #: no clear look for this many days while the crop should stand (any time for crops
    #: without a calendar) raises ``stale_data`` -- when the gap is the farm's own: its region
    #: (all farms without regions) was seen clearly, i.e. ``stale_peer_share`` of its farms
    #: had a clear look, on at least ``stale_missed_looks`` dates since the farm's last one
    stale_days: int = 30
    stale_peer_share: float = 0.5
    stale_missed_looks: int = 3
    #: a gap the whole region shares (monsoon, persistent cloud) is weather, not a farm's data
    #: problem: it raises ``stale_data`` only after this many days (then the team is blind)
    stale_regional_days: int = 60

    # --- confirmation: consecutive anomalous clear looks before an alert is raised -------
    confirm_drought: int = 2
    confirm_no_planting: int = 2
    confirm_abrupt_loss: int = 1
    confirm_flood: int = 1
    #: a hazard confirmed by a single look needs a look this clear; else it waits for a second
    single_look_min_clear: float = 0.9
    #: a look whose clear share is unknown (``clear_fraction`` NaN: a scene without a cloud
    #: mask such as L1C or a collection without SCL, a composite without a per-look quality
    #: band) confirms a hazard only as the run's look number this or later: nobody knows its
    #: sky, so it does not decide alone. 1 treats such a look as clear
    unknown_sky_looks: int = 2
    #: a date on which the peers' median fell this share since the farm's previous look is
    #: suspect: a group's median canopy does not lose that much in one revisit outside a
    #: harvest, haze, smoke, thin unmasked cloud or snow does (and a region-wide event
    #: persists into the next look). A hazard confirmed by a single look waits for a second
    #: look on such a date; 0 disables
    sky_peer_drop: float = 0.15
    #: a no-planting look whose gap to the same-date peers is this multiple of
    #: ``no_planting_gap`` confirms on its own (if clear enough): peers seen through the same
    #: atmosphere on the same date rule out haze or shadow; 0 disables
    strong_factor: float = 2.0
    #: graded confirmation of drought: one clear look confirms (raised at ``watch``, escalated
    #: once a second look agrees) when its evidence is independent and strong -- the standing
    #: loss against the same-date peers is at least ``strong_z`` robust z in the vegetation
    #: index AND in the canopy-water index (two bands, same look, peers under the same sky),
    #: and the look is ``drought_peer_deficit`` below the peers now; or it is ``strong_z``
    #: below both its own history and its same-date peers (two different references). The
    #: weaker evidence (one reference, or under ``strong_z``) waits for a second look.
    #: 0 disables.
    strong_z: float = 4.0
    #: the two-band route of ``strong_z`` needs the farm's usual standing taken over at
    #: least this many looks (one earlier look is a noisy yardstick for one-look evidence)
    strong_min_ref_looks: int = 2

    # --- recovery: what counts as a normal look (the alert lifecycle counts them) ---------
    recover_deficit: float = 0.08
    recover_peer_z: float = 1.5

    #: looks of quiet farms handed to the lifecycle (the latest ones, to see recovery)
    tail_looks: int = 5

    # --- parallelism ---------------------------------------------------------------------
    #: farms per Dask task; below ``parallel_min_farms`` farms everything runs serially
    chunk_farms: int = 250
    parallel_min_farms: int = 500
    #: an incremental night reads and labels the persisted context of this many farms at
    #: a time (0: all at once); peers are computed over every farm either way, so the
    #: looks do not depend on it -- only the night's memory does
    partition_farms: int = 20_000

    def confirm_looks(self, hazard: str) -> int:
        """Consecutive anomalous clear looks needed to confirm ``hazard``."""
        return int(getattr(self, f"confirm_{hazard}", 1))


#: The defaults (settings are immutable, so one shared instance is safe).
DEFAULT_SETTINGS = DetectSettings()
