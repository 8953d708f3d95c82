"""Counter sales (online and offline), sale conflicts, receipts and pickups at the stores."""
