"""What the planner and the executor of one dataflow share: its spec, mapper, both connectors, the store."""

from __future__ import annotations

from dataclasses import dataclass

from mapsync.connectors.base import Connector
from mapsync.mapping.mapper import Mapper
from mapsync.spec.model import DataflowSpec
from mapsync.state.base import StateStore
from mapsync.sync.lookup import StoreLinks


@dataclass(frozen=True)
class DataflowContext:
    spec: DataflowSpec
    mapper: Mapper
    source: Connector
    target: Connector
    store: StateStore
    links: StoreLinks

    @property
    def name(self) -> str:
        return self.spec.name


class UsesContext:
    """Reads the shared parts through `self.ctx` under their plain names."""

    ctx: DataflowContext

    @property
    def spec(self) -> DataflowSpec:
        return self.ctx.spec

    @property
    def mapper(self) -> Mapper:
        return self.ctx.mapper

    @property
    def source(self) -> Connector:
        return self.ctx.source

    @property
    def target(self) -> Connector:
        return self.ctx.target

    @property
    def store(self) -> StateStore:
        return self.ctx.store

    @property
    def links(self) -> StoreLinks:
        return self.ctx.links

    @property
    def name(self) -> str:
        return self.ctx.spec.name
