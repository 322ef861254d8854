"""Async engine and sessions (SQLAlchemy 2 / SQLModel on asyncpg).

A request gets one session; it commits once when the endpoint returns and rolls back on
any error (see :func:`session_dependency`). Background workers (outbox relay, consumers)
open their own sessions from the same factory.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import registry
from sqlmodel import SQLModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession as SQLModelAsyncSession


def new_table_base(name: str = "ServiceTable") -> type[SQLModel]:
    """A base class for one service's tables, with a metadata of its own.

    SQLModel's default metadata is global to the process: two services that both have a
    ``programme`` table could not be imported together (as the platform's tests do). Each
    service derives its tables from its own base; Alembic compares against ``base.metadata``.
    """
    return types.new_class(name, (SQLModel,), {"registry": registry()})


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[SQLModelAsyncSession]:
    return async_sessionmaker(engine, class_=SQLModelAsyncSession, expire_on_commit=False)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq/asyncpg form of an SQLAlchemy URL (for LISTEN connections)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[SQLModelAsyncSession] = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            # Commit before the response is sent (scope="function" below), so a client
            # never sees a success for a transaction that then fails to commit.
            await session.commit()


SessionDep = Annotated[SQLModelAsyncSession, Depends(_request_session, scope="function")]
