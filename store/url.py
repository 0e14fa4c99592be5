"""The Nix layer's Store: castore, PathInfoService and records, opened from URLs or a config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from castore.url import CAStore
from store.pathinfo.service import PathInfoService

if TYPE_CHECKING:
    from castore.composition import Composition
    from store.records.service import RecordService


class Store:
    """castore plus PathInfoService: everything a Nix-facing program needs. (A plain class, not a
    dataclass: building one costs every command 0.3 ms at start.)"""

    def __init__(self, castore: CAStore, pathinfo: PathInfoService, composition: Composition | None = None) -> None:
        self.castore = castore
        self.pathinfo = pathinfo
        self.composition = composition
        """What built the services, and closes them; None: services put together by hand (tests),
        closed here, with records in memory."""
        self._records: RecordService | None = None

    @property
    def records(self) -> RecordService:
        """Upload staging and build logs (see store/records), built on first use: few commands need them."""
        if self.composition is not None:
            from store.composition import RECORDS

            return self.composition.get(RECORDS)
        if self._records is None:
            from store.records.memory import MemoryRecordService

            self._records = MemoryRecordService()
        return self._records

    def close(self) -> None:
        if self.composition is not None:
            self.composition.close()
        else:
            self.pathinfo.close()
            self.castore.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(url: str | None = None, *, blob_url: str | None = None, directory_url: str | None = None,
               pathinfo_url: str | None = None, config: str | None = None,
               pathinfo_wrappers: tuple[dict[str, Any], ...] = (), records_url: str | None = None) -> Store:
    """All three services from one URL, or the roots of a composition file; the specific URLs
    override the roots of their kind. Each of `pathinfo_wrappers` (a combinator entry naming the
    current root "root", see store.composition.wrap_root) then goes in front of the path infos,
    the way nar-bridge adds read-through and signing."""
    from castore.composition import BLOBS, DIRECTORIES, Composition, compose
    from store.composition import KINDS, PATHINFOS, default_records, wrap_root

    config_dict = compose(config, store=url, kinds=KINDS,
                          overrides={BLOBS: blob_url, DIRECTORIES: directory_url, PATHINFOS: pathinfo_url})
    for wrapper in pathinfo_wrappers:
        wrap_root(config_dict, PATHINFOS, wrapper)
    default_records(config_dict, records_url)
    comp = Composition(config_dict)
    try:
        castore = CAStore(comp.get(BLOBS), comp.get(DIRECTORIES), comp)
        return Store(castore, comp.get(PATHINFOS), comp)
    except BaseException:
        comp.close()
        raise
