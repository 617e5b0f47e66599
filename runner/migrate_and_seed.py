"""Apply the migrations and the seed against MIGRATION_DATABASE_URL (or DATABASE_URL) (the `migrate` job of
docker-compose.yml; `make run` does the same in-process)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db import make_engine
from core.migrate import upgrade_to_head
from core.settings import Settings, get_settings
from runner.seed import seed


def migrate_and_seed(settings: Settings) -> list[str]:
    """As the tables' owner (MIGRATION_DATABASE_URL): the app's own role may not change them."""
    upgrade_to_head(settings.migration_database_url)
    engine = make_engine(settings.migration_database_url, 2)
    try:
        with Session(engine) as session, session.begin():
            return seed(session, settings)
    finally:
        engine.dispose()


def main() -> None:
    for line in migrate_and_seed(get_settings()):
        print(f"seed: {line}")


if __name__ == "__main__":
    main()
