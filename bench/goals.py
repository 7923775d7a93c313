"""The performance issue's three goals, checked against the rows measured in this run. ``as_stated``
says whether a row is in the goal's own setting (size, device class); other rows only show a trend."""
from __future__ import annotations

# kind: (goal, row key, target as written, is the target met, is the row in the goal's setting)
GOALS = {
    "gatys": ("useful network work, Gatys texture", "useful_fraction", ">= 0.8 at 512 px on a GPU",
              lambda v: v >= 0.8, lambda size, device: size == 512 and device == "cuda"),
    "batch": ("batched vs one at a time, textures/hour", "speedup", ">= 1.5x at 256 px on a GPU",
              lambda v: v >= 1.5, lambda size, device: size == 256 and device == "cuda"),
    "pipeline": ("texfarm run vs direct, time per task", "ratio", "<= 1.10 at realistic sizes (256 px and up)",
                 lambda v: v <= 1.10, lambda size, device: size >= 256),
}


def goal_rows(device_type: str, measured: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for kind, table in measured.items():
        name, key, target, met, in_setting = GOALS[kind]
        for row in table:
            if row.get("variant", "fp32") != "fp32":
                continue
            rows.append({"goal": name, "target": target, "size": row["size"], "measured": row[key],
                         "met": "yes" if met(row[key]) else "no",
                         "as_stated": "yes" if in_setting(row["size"], device_type) else "no"})
    return rows
