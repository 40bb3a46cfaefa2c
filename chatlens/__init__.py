"""Shared pieces of chatlens: settings, the records that cross Redis, and the Redis key layout."""

LABELS: tuple[str, ...] = (
    "Curious to dive deeper",
    "Neutral",
    "Surprised",
    "Happy",
    "Sad",
    "Disgusted",
    "Fearful",
    "Angry",
)

# Where a conversation summary can come from: see worker/summariser.py.
SUMMARY_BACKENDS: tuple[str, ...] = ("extractive", "transformers", "mlx")
