"""What every part of chatlens shares: settings, the records that cross Redis, the key layout, errors."""
