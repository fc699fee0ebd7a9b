"""The key consistency tokens are signed with: one per deployment, configured or kept in the
write store, never shown."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from app.adapters.migrations import SchemaBehindError
from app.adapters.service_keys import service_key
from app.config.settings import Settings, SettingsError, load_settings
from app.runtime.bootstrap import Api, consistency_token_key, open_api, open_stores

CONFIGURED = "a-consistency-token-secret-of-32-bytes-or-more"


async def test_api_processes_share_the_key_the_first_one_made(
    settings: Settings, process: Api
) -> None:
    async with open_api(settings) as another:
        assert another.services.token_key == process.services.token_key
    engine = process.stores.write_engine
    at_once = await asyncio.gather(*(service_key(engine, "fresh") for _ in range(8)))
    assert len(set(at_once)) == 1
    assert len(at_once[0]) == 32
    assert at_once[0] != process.services.token_key.secret  # one key per name


async def test_a_configured_secret_is_the_key_and_the_store_is_left_alone(
    settings: Settings, process: Api
) -> None:
    configured = settings.model_copy(update={"consistency_token_secret": SecretStr(CONFIGURED)})
    key = await consistency_token_key(configured, process.stores.write_engine)
    assert key.secret == CONFIGURED.encode()
    assert key != process.services.token_key


async def test_a_write_store_without_the_table_is_reported_behind(
    unmigrated_settings: Settings,
) -> None:
    async with open_stores(unmigrated_settings) as stores:
        with pytest.raises(SchemaBehindError, match="run `shop migrate`"):
            await service_key(stores.write_engine, "consistency_token")


def test_a_short_token_secret_is_refused_without_being_echoed() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(consistency_token_secret="hunter2-is-too-short")
    assert "SHOP_CONSISTENCY_TOKEN_SECRET=<hidden>" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert load_settings(consistency_token_secret="").consistency_token_secret is None
