"""The daemon's dashboard: history, report pages, queue and models, live input (Starlette served
by uvicorn on a thread of its own, so the OSC server and the workers never wait for it)."""
