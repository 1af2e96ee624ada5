import socket as _stdlib
from typing import Union

def gso_usable(sock: Union[_stdlib.socket, int], family: int) -> bool: ...
