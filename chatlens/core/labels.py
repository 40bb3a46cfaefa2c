"""The eight labels every classifier answers with, in the order reports list them."""

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
