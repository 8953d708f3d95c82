"""Online checkout: place orders with reservations, read them, cancel, ship, deliver, expire, confirm payment."""
