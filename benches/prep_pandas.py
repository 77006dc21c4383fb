"""The baseline a user would otherwise write for `simforge prep` on MovieLens-1M files:
pandas reads the `::`-separated latin-1 files, sorts, assigns dense ids and writes Parquet
(zstd) with pyarrow. `simforge bench data --python-baseline` times it in the same run.

Run: python3 benches/prep_pandas.py RAW_DIR OUT_DIR
"""
import sys
from pathlib import Path

import pandas as pd

raw, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
kw = dict(sep="::", engine="python", encoding="latin-1", header=None)
ratings = pd.read_csv(raw / "ratings.dat", names=["user", "item", "rating", "timestamp"], **kw)
movies = pd.read_csv(raw / "movies.dat", names=["item", "title", "genres"], **kw)
users = pd.read_csv(raw / "users.dat", names=["user", "gender", "age", "occupation", "zip"], **kw)

year = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0]
movies["year"] = pd.to_numeric(year, errors="coerce").astype("UInt32")
movies["title"] = movies["title"].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
movies["categories"] = movies["genres"].str.split("|")

users = users[users["user"].isin(ratings["user"].unique())].reset_index(drop=True)
movies = movies[movies["item"].isin(ratings["item"].unique())].reset_index(drop=True)
user_id = pd.Series(range(len(users)), index=users["user"], dtype="uint32")
item_id = pd.Series(range(len(movies)), index=movies["item"], dtype="uint32")
ratings["user_id"] = ratings["user"].map(user_id)
ratings["item_id"] = ratings["item"].map(item_id)
ratings = ratings.sort_values(["user_id", "timestamp"], kind="stable")
movies["popularity"] = ratings["item_id"].value_counts().reindex(range(len(movies)), fill_value=0).values.astype("uint32")

ratings[["user_id", "item_id", "timestamp", "rating"]].astype({"rating": "float32"}).to_parquet(out / "interactions.parquet", compression="zstd")
movies.assign(item_id=range(len(movies)))[["item_id", "item", "title", "year", "categories", "popularity"]].to_parquet(out / "items.parquet", compression="zstd")
users.assign(user_id=range(len(users))).to_parquet(out / "users.parquet", compression="zstd")
print(f'{{"interactions": {len(ratings)}, "users": {len(users)}, "items": {len(movies)}}}')
