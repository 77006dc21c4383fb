"""Opens every Parquet file of a simforge run with pyarrow and checks the documented columns.

Run: python3 tests/check_parquet.py checkpoints/quickstart
"""
import sys
from pathlib import Path

import pyarrow.parquet as pq

EXPECTED = {
    "users.parquet": {"user_id", "raw_id", "age", "gender", "occupation", "location"},
    "items.parquet": {"item_id", "raw_id", "title", "year", "categories", "description", "popularity"},
    "interactions.parquet": {"user_id", "item_id", "timestamp", "rating", "review"},
    "impressions.parquet": {"user_id", "timestamp", "item_id", "shown"},
    "truth.parquet": {"user_id", "profile", "likes", "dislikes"},
    "scenes.parquet": {"scene_id", "dataset", "split", "user_id", "target_item", "timestamp", "profile", "history",
                       "history_items", "exposure", "options", "target_pos", "choice_cnt", "prompt", "rendering", "liked_options"},
    "split.parquet": {"user_id", "item_id", "timestamp", "position", "part"},
    "profiles.parquet": {"user_id", "profile", "summary", "likes", "dislikes", "ground_truth"},
    "defects.parquet": {"sample_id", "user_id", "split", "label", "profile", "good_profile", "edit", "candidate_items",
                        "candidates", "simulated_choice", "real_choice", "history", "case"},
    "corpus.parquet": {"doc_id", "user_id", "text"},
}

root = Path(sys.argv[1])
seen = set()
for path in sorted(root.rglob("*.parquet")):
    table = pq.read_table(path)
    missing = EXPECTED[path.name] - set(table.column_names)
    assert not missing, f"{path}: missing columns {missing}"
    assert table.num_rows > 0, f"{path}: no rows"
    seen.add(path.name)
    print(f"{path.relative_to(root)}: {table.num_rows} rows, columns ok")
scenes = pq.read_table(root / "scenes" / "scenes.parquet").to_pylist()
for row in scenes:
    assert row["exposure"][row["target_pos"]] == row["target_item"]
    assert row["choice_cnt"] == len(row["exposure"]) == len(row["options"])
for row in pq.read_table(root / "prep" / "impressions.parquet").slice(0, 1000).to_pylist():
    assert row["item_id"] in row["shown"], "a logged choice is one of the titles shown"
assert seen == set(EXPECTED), f"files not produced: {set(EXPECTED) - seen}"
print("pyarrow check passed")
