"""The control database: users, datasets, segments, connections, exports, runs, audit."""
