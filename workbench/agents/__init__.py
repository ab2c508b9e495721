"""Agents, teams, model clients and the actor runtime."""
