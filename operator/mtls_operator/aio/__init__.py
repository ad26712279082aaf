"""Generic asyncio plumbing (a CPU pool, a work queue); imports nothing of ours."""
