"""Twitch: EventSub chat, cheers, subs, raids and channel-point redemptions in; replies and
redemption fulfilment out. See docs/twitch.md."""
