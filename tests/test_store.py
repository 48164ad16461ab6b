import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from trajet import store
from trajet.errors import TrajetError
from trajet.phrases import normalise_text, parse_markup

pytest_plugins = ["dbfixtures"]


def _add_phrases(engine, marked, split=None):
    """Insert phrases directly (no validation): the store's own behaviour is under test here."""
    with store.session(engine) as s:
        batch = store.Batch(source="test", sha256="0" * 64, format="jsonl", status="accepted")
        s.add(batch)
        s.flush()
        for m in marked:
            p = parse_markup(m)
            nh = store.norm_hash(normalise_text(p.text))
            sp = split or store.hash_split(nh)
            s.add(store.PhraseRow(text=p.text, norm_hash=nh, entities=[e.to_dict() for e in p.entities], split=sp,
                                  is_validation=sp == "train" and store.hash_is_validation(nh), meta={"group": "g"},
                                  group="g", batch_id=batch.id))


def test_migrations_match_the_orm(engine):
    assert store.current_revision(engine) == store.head_revision() == "0003_watch_and_review"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), store.Base.metadata)
    assert diff == []
    store.upgrade(engine=engine)  # idempotent
    assert store.current_revision(engine) == "0003_watch_and_review"


def test_out_of_date_schema_is_refused(db_url):
    eng = store.get_engine(db_url)
    with pytest.raises(TrajetError, match=r"schema is at nothing \(empty database\), code needs 0003_watch_and_review: run `trajet db upgrade`"):
        store.ensure_schema(eng)
    with pytest.raises(TrajetError, match="trajet db upgrade"):
        store.open_store(db_url)
    opened = store.open_store(db_url, upgrade=True)
    assert store.current_revision(opened.engine) == "0003_watch_and_review"
    with opened.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
    with pytest.raises(TrajetError, match="schema is at 0000_older, code needs 0003_watch_and_review"):
        store.ensure_schema(opened.engine)
    eng.dispose()
    opened.engine.dispose()


def test_session_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError), store.session(engine) as s:
        s.add(store.Batch(source="x", sha256="1" * 64, format="jsonl", status="accepted"))
        s.flush()
        raise RuntimeError("boom")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.Batch)) == 0


MARKED = [f"de [{a}|D] à [{b}|A]" for a in ("Paris", "Lyon", "Nantes", "Brest", "Metz", "Lille", "Tours")
          for b in ("Dijon", "Nice", "Caen", "Pau", "Albi", "Agen", "Sète", "Rodez", "Arles", "Blois")]


def test_snapshot_and_splits(engine):
    _add_phrases(engine, MARKED)
    snap = store.create_snapshot(engine)
    assert sum(snap.counts.values()) == len(MARKED)
    assert snap.counts == store.split_counts(engine)
    again = store.create_snapshot(engine)
    assert (again.id, again.content_hash) == (snap.id, snap.content_hash)  # same content: same snapshot
    parts = {sp: store.load_split(engine, snap.id, sp) for sp in store.SPLITS}
    assert {sp: len(v) for sp, v in parts.items()} == snap.counts
    texts = [p.text for v in parts.values() for p in v]
    assert len(set(texts)) == len(MARKED)
    assert all(p.meta["group"] == "g" for p in parts["train"])
    original = {parse_markup(m).text: parse_markup(m).entities for m in MARKED}
    assert all(p.entities == original[p.text] for v in parts.values() for p in v)
    # Later phrases do not leak into an existing snapshot; the new content gets a new hash.
    _add_phrases(engine, ["de [Vannes|D] à [Lorient|A]"], split="test")
    assert len(store.load_split(engine, snap.id, "test")) == snap.counts["test"]
    newer = store.create_snapshot(engine)
    assert newer.id != snap.id and newer.content_hash != snap.content_hash
    assert newer.counts["test"] == snap.counts["test"] + 1
    with pytest.raises(TrajetError, match="unknown split"):
        store.load_split(engine, snap.id, "dev")
    with pytest.raises(TrajetError, match="no dataset snapshot"):
        store.load_split(engine, 999, "train")


def test_snapshot_hash_depends_on_content_not_insertion_order(tmp_path):
    from dbfixtures import migrated_engine

    a = migrated_engine(f"sqlite:///{tmp_path / 'a.db'}")
    b = migrated_engine(f"sqlite:///{tmp_path / 'b.db'}")
    _add_phrases(a, MARKED)
    _add_phrases(b, list(reversed(MARKED)))
    assert store.create_snapshot(a).content_hash == store.create_snapshot(b).content_hash


def test_hash_split_proportions():
    hashes = [store.norm_hash(f"phrase {i}") for i in range(4000)]
    test_share = sum(store.hash_split(h) == "test" for h in hashes) / len(hashes)
    train = [h for h in hashes if store.hash_split(h) == "train"]
    val_share = sum(store.hash_is_validation(h) for h in train) / len(train)
    assert 0.18 < test_share < 0.22
    assert 0.10 < val_share < 0.15
    assert all(store.hash_split(h) == store.hash_split(h) for h in hashes[:50])


def test_get_engine_creates_sqlite_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}"
    eng = store.get_engine(url)
    with eng.connect() as conn:
        assert conn.scalar(sa.text("select 1")) == 1
    assert (tmp_path / "deep" / "er").is_dir()
    store.upgrade(engine=eng)
    assert json.dumps(store.split_counts(eng)) == '{"train": 0, "validation": 0, "test": 0}'
