"""OSC control surface: namespace /aimusic over UDP (see README, "OSC")."""
