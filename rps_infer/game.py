"""The rock-paper-scissors card game: rules, the 81-feature encoding, realistic positions.

The encoding is exactly the one the Go engine writes: 9 cells x 9 features, where
per cell [0..2] is the one-hot card (Rock, Paper, Scissors; set only if occupied),
[3..5] the one-hot owner (none, player 1, player 2), [6] / [7] are set when player
1 / player 2 is to move (on every cell), and [8] is always 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROCK, PAPER, SCISSORS = 0, 1, 2
CARD_NAMES = ("Rock", "Paper", "Scissors")
NO_OWNER, PLAYER1, PLAYER2 = 0, 1, 2
BOARD_CELLS = 9
FEATURES_PER_CELL = 9
FEATURE_COUNT = BOARD_CELLS * FEATURES_PER_CELL  # 81
DECK_SIZE = 21
HAND_SIZE = 5
MAX_ROUNDS = 10

# BEATS[a] is the card that a beats: Rock beats Scissors, Scissors Paper, Paper Rock.
BEATS = {ROCK: SCISSORS, SCISSORS: PAPER, PAPER: ROCK}


def _neighbours(cell: int) -> tuple[int, ...]:
    row, col = divmod(cell, 3)
    out = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = row + dr, col + dc
        if 0 <= r < 3 and 0 <= c < 3:
            out.append(r * 3 + c)
    return tuple(out)


NEIGHBOURS = tuple(_neighbours(cell) for cell in range(BOARD_CELLS))


@dataclass
class GameState:
    """A position: the board, both hands and whose turn it is.

    ``cards[i]`` is the card on cell i (-1 when empty), ``owners[i]`` its owner.
    """

    cards: list[int] = field(default_factory=lambda: [-1] * BOARD_CELLS)
    owners: list[int] = field(default_factory=lambda: [NO_OWNER] * BOARD_CELLS)
    hands: dict[int, list[int]] = field(default_factory=lambda: {PLAYER1: [], PLAYER2: []})
    to_move: int = PLAYER1
    round: int = 1  # 1-based; a round is one move by each player

    @classmethod
    def deal(cls, rng: np.random.Generator) -> GameState:
        """Shuffle the 21-card deck (Rock, Paper, Scissors cycling) and deal 5 cards each."""
        deck = [i % 3 for i in range(DECK_SIZE)]
        rng.shuffle(deck)
        state = cls()
        state.hands[PLAYER1] = deck[:HAND_SIZE]
        state.hands[PLAYER2] = deck[HAND_SIZE : 2 * HAND_SIZE]
        return state

    def legal_moves(self) -> list[tuple[int, int]]:
        """All (hand index, cell) pairs the side to move may play; empty when the game is over."""
        if self.is_over():
            return []
        empty = [c for c in range(BOARD_CELLS) if self.cards[c] < 0]
        return [(h, c) for h in range(len(self.hands[self.to_move])) for c in empty]

    def is_over(self) -> bool:
        """Both hands empty, round 10 played, or no move left for the side to move."""
        if not self.hands[PLAYER1] and not self.hands[PLAYER2]:
            return True
        if self.round > MAX_ROUNDS:
            return True
        no_cell = all(card >= 0 for card in self.cards)
        return no_cell or not self.hands[self.to_move]

    def play(self, hand_index: int, cell: int) -> None:
        """Place a card from the mover's hand and capture the adjacent cards it beats."""
        player = self.to_move
        if self.cards[cell] >= 0:
            raise ValueError(f"cell {cell} is occupied")
        card = self.hands[player].pop(hand_index)
        self.cards[cell] = card
        self.owners[cell] = player
        for other in NEIGHBOURS[cell]:
            if self.owners[other] not in (NO_OWNER, player) and BEATS[card] == self.cards[other]:
                self.owners[other] = player
        if player == PLAYER2:
            self.round += 1
        self.to_move = PLAYER2 if player == PLAYER1 else PLAYER1

    def winner(self) -> int:
        """PLAYER1 or PLAYER2 by owned cells, NO_OWNER for a draw."""
        p1 = self.owners.count(PLAYER1)
        p2 = self.owners.count(PLAYER2)
        return PLAYER1 if p1 > p2 else PLAYER2 if p2 > p1 else NO_OWNER

    def encode(self) -> np.ndarray:
        """The 81 float32 features of this position, as the Go engine writes them."""
        features = np.zeros((BOARD_CELLS, FEATURES_PER_CELL), dtype=np.float32)
        for cell in range(BOARD_CELLS):
            if self.cards[cell] >= 0:
                features[cell, self.cards[cell]] = 1.0
            features[cell, 3 + self.owners[cell]] = 1.0
            features[cell, 6 if self.to_move == PLAYER1 else 7] = 1.0
        return features.reshape(FEATURE_COUNT)


def realistic_positions(count: int, seed: int = 0) -> np.ndarray:
    """``count`` positions from random legal self-play, encoded as float32 [count, 81].

    Every position is one where a move is to be chosen (the game is not over), so
    the batch looks like what a game client sends. Deterministic for a given seed.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    while len(rows) < count:
        state = GameState.deal(rng)
        while not state.is_over() and len(rows) < count:
            rows.append(state.encode())
            moves = state.legal_moves()
            state.play(*moves[rng.integers(len(moves))])
    if not rows:
        return np.zeros((0, FEATURE_COUNT), dtype=np.float32)
    return np.stack(rows)
